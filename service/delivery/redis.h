// The one place service/delivery takes the gateway's asynchronous Redis client from (hiredis's
// async API on an event thread of its own: RedisClient, RedisReply, RedisEndpoint and
// ParseRedisUrl). When the client moves to its own folder, only these includes change.
#ifndef USERPILOT_GATEWAY_SERVICE_DELIVERY_REDIS_H_
#define USERPILOT_GATEWAY_SERVICE_DELIVERY_REDIS_H_

#include "service/redis/redis_client.h"  // IWYU pragma: export
#include "service/redis/redis_url.h"     // IWYU pragma: export

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_REDIS_H_
