"""Unit tests of userpilot_gateway.AsyncClient (grpc.aio) against the scripted in-process server:
the same deadlines, x-caller, retry rules, error details, reconnecting watches and chunked
uploads as the sync client."""

import asyncio
import unittest

import grpc

import userpilot_gateway as upg
from scripted import ScriptedServer, error_info, job, retry_info
from userpilot_gateway import pb


class AsyncClientTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.server = ScriptedServer()
        self.servicer = self.server.servicer
        self.sleeps = []

        async def sleep(seconds):
            self.sleeps.append(seconds)

        self.client = upg.AsyncClient(self.server.target, caller="aio-test",
                                      retry=upg.RetryPolicy(initial_backoff=0.1), sleep=sleep)

    async def asyncTearDown(self):
        await self.client.close()
        self.server.stop()

    async def test_every_unary_call_with_caller_and_default_deadlines(self):
        answer = await self.client.identify_user("u1", {"plan": "pro"}, {"company_id": "c1"})
        self.assertEqual(answer.upstream_request_id, "r1")
        self.assertEqual((await self.client.identify_company("c1")).upstream_request_id, "rc")
        self.assertEqual((await self.client.track_event("u1", "e")).upstream_request_id, "r2")
        self.assertEqual((await self.client.bulk_identify_users([{"user_id": "a"}])).total_rows, 1)
        self.assertEqual(
            (await self.client.bulk_identify_companies([{"company_id": "c"}])).total_rows, 1)
        self.assertEqual([j.job_id for j in await self.client.list_jobs()], ["a"])
        self.assertEqual((await self.client.get_job("j", timeout=2.5)).job_id, "j")
        self.assertEqual((await self.client.delete_users(["u1"])).upstream_request_id, "d")
        response = await self.client.call("GetJob", pb.GetJobRequest(job_id="k"),
                                          call_metadata=[("x-tag", "1")])
        self.assertEqual(response.job_id, "k")
        seen = self.servicer.seen
        self.assertEqual({s.caller for s in seen}, {"aio-test"})
        remaining = {s.method: s.time_remaining for s in seen}
        self.assertAlmostEqual(remaining["IdentifyUser"], 10, delta=1)
        self.assertAlmostEqual(remaining["BulkIdentifyUsers"], 60, delta=1)
        self.assertAlmostEqual(seen[6].time_remaining, 2.5, delta=1)
        self.assertEqual(seen[-1].metadata["x-tag"], "1")

    async def test_retries_with_the_same_rules(self):
        self.servicer.fail("IdentifyUser", grpc.StatusCode.UNAVAILABLE)
        self.servicer.fail("IdentifyUser", grpc.StatusCode.RESOURCE_EXHAUSTED, "429",
                           error_info("UPSTREAM_RATE_LIMITED"), retry_info(1.5))
        await self.client.identify_user("u1")
        self.assertEqual(self.servicer.calls("IdentifyUser"), 3)
        self.assertEqual(len(self.sleeps), 2)
        self.assertTrue(0.05 <= self.sleeps[0] <= 0.1, self.sleeps)
        self.assertTrue(1.5 <= self.sleeps[1] <= 1.8, self.sleeps)

    async def test_not_idempotent_methods_only_when_surely_not_sent(self):
        self.servicer.fail("TrackEvent", grpc.StatusCode.UNAVAILABLE, "reset",
                           error_info("UPSTREAM_UNAVAILABLE", "true"))
        with self.assertRaises(upg.GatewayError) as raised:
            await self.client.track_event("u1", "e")
        self.assertEqual(raised.exception.attempts, 1)
        self.assertTrue(raised.exception.details.request_may_have_been_sent)
        self.servicer.fail("BulkIdentifyUsers", grpc.StatusCode.UNAVAILABLE, "refused",
                           error_info("UPSTREAM_UNAVAILABLE", "false"))
        await self.client.bulk_identify_users([{"user_id": "a"}])
        self.assertEqual(self.servicer.calls("BulkIdentifyUsers"), 2)
        self.servicer.fail("GetJob", grpc.StatusCode.INVALID_ARGUMENT, "bad")
        with self.assertRaises(upg.GatewayError) as raised:
            await self.client.get_job("j")
        self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(self.servicer.calls("GetJob"), 1)

    async def test_never_waits_past_the_deadline(self):
        self.servicer.fail("IdentifyUser", grpc.StatusCode.RESOURCE_EXHAUSTED, "429",
                           retry_info(5))
        with self.assertRaises(upg.GatewayError) as raised:
            await self.client.identify_user("u1", timeout=1)
        self.assertEqual(raised.exception.retry_delay, 5)
        self.assertEqual(self.sleeps, [])

    async def test_watch_job_reconnects_without_repeating_a_state(self):
        self.servicer.watches.append(([job(pb.JOB_STATUS_QUEUED, 0),
                                       job(pb.JOB_STATUS_PROCESSING, 1)],
                                      grpc.StatusCode.UNAVAILABLE))
        self.servicer.watches.append(([job(pb.JOB_STATUS_PROCESSING, 2),
                                       job(pb.JOB_STATUS_COMPLETED, 3)], None))
        states = [j.status async for j in self.client.watch_job("bulk:jobs:1")]
        self.assertEqual(states, [pb.JOB_STATUS_QUEUED, pb.JOB_STATUS_PROCESSING,
                                  pb.JOB_STATUS_COMPLETED])
        self.assertEqual(self.servicer.calls("WatchJob"), 2)

    async def test_watch_job_stops_early_and_gives_up_on_not_found(self):
        self.servicer.watches.append(([job(pb.JOB_STATUS_QUEUED, 0),
                                       job(pb.JOB_STATUS_PROCESSING, 1)], None))
        watch = self.client.watch_job("bulk:jobs:1")
        self.assertEqual((await watch.__anext__()).status, pb.JOB_STATUS_QUEUED)
        await watch.aclose()
        self.servicer.watches.append(([], grpc.StatusCode.NOT_FOUND))
        with self.assertRaises(upg.GatewayError) as raised:
            async for _ in self.client.watch_job("nope"):
                pass
        self.assertEqual(raised.exception.code, grpc.StatusCode.NOT_FOUND)

    async def test_import_data_sends_header_then_chunks(self):
        data = b'{"user_id":"a"}\n{"user_id":"b"}\n'
        result = await self.client.import_data(pb.IMPORT_TARGET_USERS_BULK, data, chunk_size=8)
        self.assertEqual(result.job_id, "import:jobs:1")
        messages = self.servicer.imported
        self.assertEqual(messages[0].header.size_bytes, len(data))
        self.assertEqual(b"".join(m.chunk for m in messages[1:]), data)

    async def test_many_tasks_share_one_client(self):
        answers = await asyncio.gather(*(self.client.get_job(f"j{i}") for i in range(20)))
        self.assertEqual(sorted(a.job_id for a in answers), sorted(f"j{i}" for i in range(20)))


if __name__ == "__main__":
    unittest.main()
