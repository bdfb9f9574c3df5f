// DeliveryFrontend over a real embedded log in a temporary folder: validation before anything
// is stored, acknowledgement from the durable append, per-item batch answers, dead letters.
#include "service/delivery/delivery_frontend.h"

#include <future>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/delivery/enqueued_call.h"
#include "service/delivery/log_delivery_store.h"
#include "tests/delivery/delivery_store_test_util.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TempFolder;

template <typename T>
class Answer {
 public:
  DeliveryFrontend::Done<T> Callback() {
    return [this](Result<T> result) { promise_.set_value(std::move(result)); };
  }
  Result<T> Get() { return future_.get(); }

 private:
  std::promise<Result<T>> promise_;
  std::future<Result<T>> future_ = promise_.get_future();
};

v1::EnqueueRequest Track(const std::string& user, const std::string& event) {
  v1::EnqueueRequest request;
  request.mutable_track_event()->set_user_id(user);
  request.mutable_track_event()->set_event_name(event);
  return request;
}

class DeliveryFrontendTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open(uint64_t max_bytes = uint64_t{1} << 30, uint64_t segment_bytes = 64 << 20) {
    LogDeliveryStoreOptions options;
    options.dir = folder_.path();
    options.max_bytes = max_bytes;
    options.segment_bytes = segment_bytes;
    auto store = LogDeliveryStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    DeliveryFrontendHooks hooks;
    hooks.on_enqueued = [this] { ++woken_; };
    hooks.on_append = [this](absl::Duration) { ++appends_timed_; };
    frontend_ = std::make_unique<DeliveryFrontend>(*store_, validator_, hooks);
  }

  Result<v1::EnqueueResponse> Enqueue(const v1::EnqueueRequest& request) {
    Answer<v1::EnqueueResponse> answer;
    frontend_->Enqueue(request, answer.Callback());
    return answer.Get();
  }

  TempFolder folder_;
  RequestValidator validator_{ValidationLimits{}};
  std::unique_ptr<LogDeliveryStore> store_;
  std::unique_ptr<DeliveryFrontend> frontend_;
  std::atomic<int> woken_{0};
  std::atomic<int> appends_timed_{0};
};

TEST_F(DeliveryFrontendTest, StoresAValidCallAndAnswersItsId) {
  Result<v1::EnqueueResponse> answer = Enqueue(Track("u1", "signed_up"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_FALSE(answer->delivery_id().empty());
  EXPECT_FALSE(answer->duplicate());
  EXPECT_EQ(woken_, 1);
  EXPECT_EQ(appends_timed_, 1);
  auto info = testing::GetSync(*store_, answer->delivery_id());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->state, DeliveryState::kPending);
  EXPECT_EQ(CallTypeName(info->kind), "track_event");
  EXPECT_THAT(info->ordering_keys, ElementsAre("user:u1"));
}

TEST_F(DeliveryFrontendTest, ValidatesLikeTheSynchronousRpcBeforeStoring) {
  // The same rule TrackEvent applies (event_name required), named from the EnqueueRequest.
  Result<v1::EnqueueResponse> answer = Enqueue(Track("u1", ""));
  ASSERT_EQ(answer.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(answer.facts().violations.size(), 1u);
  EXPECT_EQ(answer.facts().violations[0].field, "track_event.event_name");
  // Identify's rules too, nested fields included.
  v1::EnqueueRequest identify;
  identify.mutable_identify_user()->set_user_id("u1");
  identify.mutable_identify_user()->mutable_company();  // company_id missing
  answer = Enqueue(identify);
  ASSERT_EQ(answer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(answer.status().message(), HasSubstr("identify_user.company"));
  // No call at all; an idempotency key over its bound.
  v1::EnqueueRequest empty;
  empty.set_idempotency_key(std::string(kMaxIdempotencyKeyBytes + 1, 'k'));
  answer = Enqueue(empty);
  ASSERT_EQ(answer.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(answer.facts().violations.size(), 2u);
  EXPECT_EQ(answer.facts().violations[0].field, "idempotency_key");
  EXPECT_EQ(answer.facts().violations[1].field, "call");
  EXPECT_EQ(store_->Stats().appends, 0u);  // Nothing stored.
  EXPECT_EQ(woken_, 0);
}

TEST_F(DeliveryFrontendTest, IdempotencyKeyAnswersTheFirstId) {
  v1::EnqueueRequest request = Track("u1", "paid");
  request.set_idempotency_key("order-17");
  Result<v1::EnqueueResponse> first = Enqueue(request);
  Result<v1::EnqueueResponse> second = Enqueue(request);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(second->delivery_id(), first->delivery_id());
  EXPECT_TRUE(second->duplicate());
  EXPECT_EQ(store_->Stats().appends, 1u);
  EXPECT_EQ(woken_, 1);
}

TEST_F(DeliveryFrontendTest, FullQueueAnswersResourceExhaustedNeverDrops) {
  store_->Close();
  store_.reset();
  frontend_.reset();
  Open(/*max_bytes=*/128 << 10, /*segment_bytes=*/64 << 10);
  v1::EnqueueRequest big = Track("u1", "e");
  (*big.mutable_track_event()->mutable_metadata()->mutable_fields())["blob"].set_string_value(
      std::string(4000, 'x'));
  int stored = 0;
  absl::Status refused;
  for (int i = 0; i < 100 && refused.ok(); ++i) {
    Result<v1::EnqueueResponse> answer = Enqueue(big);
    if (answer.ok()) {
      ++stored;
    } else {
      refused = answer.status();
    }
  }
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_GT(stored, 0);
  EXPECT_EQ(store_->Stats().appends, static_cast<uint64_t>(stored));  // Every ack is stored.
}

TEST_F(DeliveryFrontendTest, BatchAnswersPerItemInOrder) {
  v1::EnqueueBatchRequest batch;
  *batch.add_calls() = Track("u1", "a");
  *batch.add_calls() = Track("u1", "");  // invalid
  *batch.add_calls() = Track("u1", "b");
  Answer<v1::EnqueueBatchResponse> answer;
  frontend_->EnqueueBatch(batch, answer.Callback());
  Result<v1::EnqueueBatchResponse> result = answer.Get();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->outcomes_size(), 3);
  EXPECT_EQ(result->outcomes(0).code(), 0);
  EXPECT_EQ(result->outcomes(1).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(result->outcomes(1).message(), HasSubstr("calls[1].track_event.event_name"));
  EXPECT_TRUE(result->outcomes(1).delivery_id().empty());
  EXPECT_EQ(result->outcomes(2).code(), 0);
  // Stored in item order: the first item is leased (head of user:u1) before the third.
  auto leased = testing::LeaseSync(*store_, 10);
  ASSERT_TRUE(leased.ok());
  ASSERT_EQ(leased->size(), 1u);
  EXPECT_EQ((*leased)[0].info.delivery_id, result->outcomes(0).delivery_id());

  v1::EnqueueBatchRequest empty;
  Answer<v1::EnqueueBatchResponse> refused;
  frontend_->EnqueueBatch(empty, refused.Callback());
  EXPECT_EQ(refused.Get().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DeliveryFrontendTest, GetListAndRedrive) {
  Result<v1::EnqueueResponse> enqueued = Enqueue(Track("u1", "a"));
  ASSERT_TRUE(enqueued.ok());
  const std::string id = enqueued->delivery_id();
  auto leased = testing::LeaseSync(*store_, 10);
  ASSERT_TRUE(leased.ok() && leased->size() == 1u);
  ASSERT_TRUE(
      testing::CompleteSync(*store_, id, DeliveryOutcome::Dead("Userpilot answered HTTP 400: bad"))
          .ok());

  v1::GetDeliveryRequest get;
  get.set_delivery_id(id);
  Answer<v1::GetDeliveryResponse> got;
  frontend_->GetDelivery(get, got.Callback());
  Result<v1::GetDeliveryResponse> delivery = got.Get();
  ASSERT_TRUE(delivery.ok()) << delivery.status();
  EXPECT_EQ(delivery->delivery().state(), v1::DELIVERY_STATE_DEAD);
  EXPECT_EQ(delivery->delivery().call_type(), "track_event");
  EXPECT_EQ(delivery->delivery().attempts(), 1);
  EXPECT_EQ(delivery->delivery().last_error(), "Userpilot answered HTTP 400: bad");
  EXPECT_TRUE(delivery->delivery().has_enqueue_time());
  EXPECT_TRUE(delivery->delivery().has_finish_time());

  Answer<v1::ListDeadLettersResponse> listed;
  frontend_->ListDeadLetters(v1::ListDeadLettersRequest(), listed.Callback());
  Result<v1::ListDeadLettersResponse> page = listed.Get();
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->dead_letters_size(), 1);
  EXPECT_EQ(page->dead_letters(0).delivery_id(), id);

  v1::RedriveDeadLettersRequest redrive;
  redrive.add_delivery_ids(id);
  redrive.add_delivery_ids("nope");
  Answer<v1::RedriveDeadLettersResponse> redriven;
  frontend_->RedriveDeadLetters(redrive, redriven.Callback());
  Result<v1::RedriveDeadLettersResponse> outcomes = redriven.Get();
  ASSERT_TRUE(outcomes.ok());
  ASSERT_EQ(outcomes->outcomes_size(), 2);
  EXPECT_EQ(outcomes->outcomes(0).code(), 0);
  EXPECT_EQ(outcomes->outcomes(1).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(woken_, 2);  // The enqueue, and the redrive.
  auto again = testing::GetSync(*store_, id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state, DeliveryState::kPending);

  v1::GetDeliveryRequest unknown;
  unknown.set_delivery_id("nope");
  Answer<v1::GetDeliveryResponse> missing;
  frontend_->GetDelivery(unknown, missing.Callback());
  EXPECT_EQ(missing.Get().status().code(), absl::StatusCode::kNotFound);

  v1::ListDeadLettersRequest too_big;
  too_big.set_page_size(kMaxDeadLetterPage + 1);
  Answer<v1::ListDeadLettersResponse> refused;
  frontend_->ListDeadLetters(too_big, refused.Callback());
  EXPECT_EQ(refused.Get().status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace userpilot::gateway
