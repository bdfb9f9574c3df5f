# Redis-backed budgets for several replicas sharing one Userpilot API key (redis_*.h), and the
# redis-server test helper (tests/redis). Included by this folder's CMakeLists.txt after the
# local rate-limit library, whose LocalTokenSource is the fallback share.
#   upgw_ratelimit_redis   RedisClient, RedisTokenSource, FallbackTokenSource, the factory
#   upgw_redis_testing     tests/redis/redis_server.h: a real redis-server on loopback
# Tests labelled `redis` start redis-server (Debian package redis-server).
find_package(PkgConfig REQUIRED)
# hiredis 0.14 ships no CMake config, only pkg-config. GLOBAL: tests in other folders (e.g.
# tests/integration) link upgw_redis_testing, which carries this target.
if(NOT TARGET PkgConfig::HIREDIS)
  pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET GLOBAL hiredis)
endif()

add_library(upgw_ratelimit_redis STATIC
  ${CMAKE_CURRENT_LIST_DIR}/redis_url.cc
  ${CMAKE_CURRENT_LIST_DIR}/redis_client.cc
  ${CMAKE_CURRENT_LIST_DIR}/redis_token_source.cc
  ${CMAKE_CURRENT_LIST_DIR}/redis_fallback_token_source.cc
  ${CMAKE_CURRENT_LIST_DIR}/redis_token_source_factory.cc)
upgw_warnings(upgw_ratelimit_redis)
target_link_libraries(upgw_ratelimit_redis
  PUBLIC upgw_ratelimit absl::any_invocable absl::status absl::statusor
         absl::strings absl::time Threads::Threads
  PRIVATE PkgConfig::HIREDIS)

add_library(upgw_redis_testing STATIC ${CMAKE_CURRENT_LIST_DIR}/../../tests/redis/redis_server.cc)
upgw_warnings(upgw_redis_testing)
target_link_libraries(upgw_redis_testing
  PUBLIC absl::status absl::statusor absl::strings absl::time Threads::Threads
  PRIVATE PkgConfig::HIREDIS)

upgw_test(redis_url_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/redis_url_test.cc
          LIBS upgw_ratelimit_redis)
upgw_test(redis_fallback_token_source_test
          SOURCES ${CMAKE_CURRENT_LIST_DIR}/redis_fallback_token_source_test.cc
          LIBS upgw_ratelimit_redis)
upgw_test(redis_token_source_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/redis_token_source_test.cc
          LIBS upgw_ratelimit_redis upgw_redis_testing LABELS redis)
