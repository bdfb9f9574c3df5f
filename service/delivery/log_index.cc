#include "service/delivery/log_index.h"

#include <algorithm>

namespace userpilot::gateway::delivery_log {
namespace {

absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

DeliveryState StateFromInt(uint32_t s) {
  switch (s) {
    case 1:
      return DeliveryState::kDelivered;
    case 2:
      return DeliveryState::kDead;
    default:
      return DeliveryState::kPending;
  }
}

uint32_t StateToInt(DeliveryState s) {
  switch (s) {
    case DeliveryState::kDelivered:
      return 1;
    case DeliveryState::kDead:
      return 2;
    case DeliveryState::kPending:
      break;
  }
  return 0;
}

}  // namespace

// ---- Applying records ----

void LogIndex::ApplyAppend(uint64_t seq, const AppendBody& body, Location where) {
  if (entries_.contains(seq)) return;
  Entry e;
  e.id = seq;
  e.order_seq = seq;
  e.kind = body.kind();
  e.enqueue_time = FromMicros(body.enqueue_unix_micros());
  e.idempotency_key = body.idempotency_key();
  e.ordering_keys.assign(body.ordering_keys().begin(), body.ordering_keys().end());
  e.home = where;
  Insert(std::move(e));
}

void LogIndex::ApplyLease(const LeaseBody& body, bool live) {
  auto it = entries_.find(body.id());
  if (it == entries_.end() || it->second.state != DeliveryState::kPending) return;
  Entry& e = it->second;
  ++e.attempts;
  if (e.open_attempt) e.in_doubt = true;
  e.open_attempt = true;
  if (live && !e.leased) {
    Unready(e);
    e.leased = true;
    ++leased_;
  }
}

void LogIndex::ApplyOutcome(const OutcomeBody& body, absl::Time not_before) {
  auto it = entries_.find(body.id());
  if (it == entries_.end() || it->second.state != DeliveryState::kPending) return;
  Entry& e = it->second;
  e.open_attempt = false;
  if (e.leased) {
    e.leased = false;
    --leased_;
  }
  const absl::Time at = FromMicros(body.unix_micros());
  switch (body.kind()) {
    case OutcomeBody::DELIVERED:
      LeavePending(e);
      e.state = DeliveryState::kDelivered;
      e.finish_time = at;
      expiry_.insert({at + retention_, e.id});
      break;
    case OutcomeBody::DEAD:
      LeavePending(e);
      e.state = DeliveryState::kDead;
      e.finish_time = at;
      e.last_error = body.error();
      dead_.insert(e.id);
      break;
    default:
      e.last_error = body.error();
      e.not_before = not_before;
      MaybeReady(e);
      break;
  }
  UpdateLiveBytes(e);
}

void LogIndex::ApplyRedrive(uint64_t seq, const RedriveBody& body) {
  auto it = entries_.find(body.id());
  if (it == entries_.end() || it->second.state != DeliveryState::kDead) return;
  Entry& e = it->second;
  dead_.erase(e.id);
  e.state = DeliveryState::kPending;
  e.finish_time = absl::InfinitePast();
  e.not_before = absl::InfinitePast();
  e.order_seq = seq;
  EnterPending(e);
  UpdateLiveBytes(e);
}

void LogIndex::ApplyCarry(const CarryBody& body, Location where) {
  Remove(body.id());
  Entry e;
  e.id = body.id();
  e.order_seq = body.order_seq();
  e.state = StateFromInt(body.state());
  e.kind = body.append().kind();
  e.attempts = body.attempts();
  e.in_doubt = body.in_doubt();
  e.open_attempt = body.open_attempt();
  e.has_payload = e.state != DeliveryState::kDelivered && !body.append().payload().empty();
  e.last_error = body.last_error();
  e.enqueue_time = FromMicros(body.append().enqueue_unix_micros());
  e.finish_time = e.state == DeliveryState::kPending ? absl::InfinitePast()
                                                     : FromMicros(body.finish_unix_micros());
  e.idempotency_key = body.append().idempotency_key();
  e.ordering_keys.assign(body.append().ordering_keys().begin(),
                         body.append().ordering_keys().end());
  e.home = where;
  Insert(std::move(e));
}

void LogIndex::FinishReplay() {
  for (auto& [id, e] : entries_) {
    if (e.open_attempt) {
      e.in_doubt = true;
      e.open_attempt = false;
    }
  }
}

// ---- Placement ----

void LogIndex::Insert(Entry entry) {
  const uint64_t id = entry.id;
  Entry& e = entries_.emplace(id, std::move(entry)).first->second;
  if (!e.idempotency_key.empty()) by_idempotency_key_[e.idempotency_key] = id;
  switch (e.state) {
    case DeliveryState::kPending:
      EnterPending(e);
      break;
    case DeliveryState::kDead:
      dead_.insert(id);
      break;
    case DeliveryState::kDelivered:
      expiry_.insert({e.finish_time + retention_, id});
      break;
  }
  homed_[e.home.segment].insert(id);
  e.live_bytes = EstimateLiveBytes(e);
  AddLive(e.home.segment, e.live_bytes);
}

void LogIndex::Remove(uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  switch (e.state) {
    case DeliveryState::kPending:
      if (e.leased) --leased_;
      e.leased = false;
      LeavePending(e);
      break;
    case DeliveryState::kDead:
      dead_.erase(id);
      break;
    case DeliveryState::kDelivered:
      expiry_.erase({e.finish_time + retention_, id});
      break;
  }
  if (!e.idempotency_key.empty()) {
    auto k = by_idempotency_key_.find(e.idempotency_key);
    if (k != by_idempotency_key_.end() && k->second == id) by_idempotency_key_.erase(k);
  }
  auto h = homed_.find(e.home.segment);
  if (h != homed_.end()) {
    h->second.erase(id);
    if (h->second.empty()) homed_.erase(h);
  }
  SubLive(e.home.segment, e.live_bytes);
  entries_.erase(it);
}

void LogIndex::EnterPending(Entry& e) {
  const OrderKey me{e.order_seq, e.id};
  pending_by_enqueue_.insert({e.enqueue_time, e.id});
  ++pending_by_kind_[e.kind];
  for (const std::string& k : e.ordering_keys) {
    std::set<OrderKey>& q = by_ordering_key_[k];
    const bool had_head = !q.empty();
    const OrderKey old_head = had_head ? *q.begin() : OrderKey{};
    q.insert(me);
    // A redriven record goes behind what is queued; a replayed one may land in front.
    if (had_head && *q.begin() == me) {
      auto old = entries_.find(old_head.second);
      if (old != entries_.end()) Unready(old->second);
    }
  }
  MaybeReady(e);
}

void LogIndex::LeavePending(Entry& e) {
  const OrderKey me{e.order_seq, e.id};
  Unready(e);
  pending_by_enqueue_.erase({e.enqueue_time, e.id});
  if (--pending_by_kind_[e.kind] == 0) pending_by_kind_.erase(e.kind);
  for (const std::string& k : e.ordering_keys) {
    auto q = by_ordering_key_.find(k);
    if (q == by_ordering_key_.end()) continue;
    q->second.erase(me);
    if (q->second.empty()) {
      by_ordering_key_.erase(q);
      continue;
    }
    const uint64_t next = q->second.begin()->second;
    auto n = entries_.find(next);
    if (n != entries_.end()) MaybeReady(n->second);
  }
}

bool LogIndex::HeadOfAll(const Entry& e) const {
  for (const std::string& k : e.ordering_keys) {
    auto q = by_ordering_key_.find(k);
    if (q == by_ordering_key_.end() || q->second.empty() || q->second.begin()->second != e.id) {
      return false;
    }
  }
  return true;
}

void LogIndex::MaybeReady(const Entry& e) {
  if (e.state != DeliveryState::kPending || e.leased || !HeadOfAll(e)) return;
  if (e.not_before != absl::InfinitePast()) {
    waiting_.insert({e.not_before, e.id});
  } else {
    ready_[e.kind].insert({e.order_seq, e.id});
  }
}

void LogIndex::Unready(const Entry& e) {
  waiting_.erase({e.not_before, e.id});
  auto r = ready_.find(e.kind);
  if (r == ready_.end()) return;
  r->second.erase({e.order_seq, e.id});
  if (r->second.empty()) ready_.erase(r);
}

void LogIndex::SetHome(Entry& e, Location where) {
  auto h = homed_.find(e.home.segment);
  if (h != homed_.end()) {
    h->second.erase(e.id);
    if (h->second.empty()) homed_.erase(h);
  }
  SubLive(e.home.segment, e.live_bytes);
  e.home = where;
  homed_[where.segment].insert(e.id);
  AddLive(where.segment, e.live_bytes);
}

void LogIndex::UpdateLiveBytes(Entry& e) {
  const uint64_t now = EstimateLiveBytes(e);
  AddLive(e.home.segment, now);
  SubLive(e.home.segment, e.live_bytes);
  e.live_bytes = now;
}

void LogIndex::AddLive(uint64_t segment, uint64_t bytes) {
  live_bytes_[segment] += bytes;
  total_live_bytes_ += bytes;
}

void LogIndex::SubLive(uint64_t segment, uint64_t bytes) {
  auto it = live_bytes_.find(segment);
  if (it == live_bytes_.end()) return;
  it->second -= bytes;
  total_live_bytes_ -= bytes;
  if (it->second == 0) live_bytes_.erase(it);
}

uint64_t LogIndex::EstimateLiveBytes(const Entry& e) {
  // What a carry record would take: the metadata, plus the payload while it is needed.
  uint64_t bytes = 64 + e.idempotency_key.size() + e.last_error.size();
  for (const std::string& k : e.ordering_keys) bytes += k.size() + 2;
  if (e.state != DeliveryState::kDelivered && e.has_payload) bytes += e.home.size;
  return bytes;
}

// ---- Queries ----

std::optional<LogIndex::Found> LogIndex::Find(uint64_t id) const {
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return Found{id, it->second.state, it->second.leased};
}

std::optional<uint64_t> LogIndex::FindByKey(const std::string& idempotency_key) const {
  auto it = by_idempotency_key_.find(idempotency_key);
  if (it == by_idempotency_key_.end()) return std::nullopt;
  return it->second;
}

std::optional<DeliveryInfo> LogIndex::Info(uint64_t id) const {
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  const Entry& e = it->second;
  DeliveryInfo info;
  info.state = e.state;
  info.kind = e.kind;
  info.attempts = e.attempts;
  info.last_error = e.last_error;
  info.enqueue_time = e.enqueue_time;
  info.finish_time = e.finish_time;
  info.idempotency_key = e.idempotency_key;
  info.ordering_keys = e.ordering_keys;
  return info;
}

bool LogIndex::InDoubt(uint64_t id) const {
  auto it = entries_.find(id);
  return it != entries_.end() && it->second.in_doubt;
}

std::optional<Location> LogIndex::PayloadLocation(uint64_t id) const {
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.has_payload ||
      it->second.state == DeliveryState::kDelivered) {
    return std::nullopt;
  }
  return it->second.home;
}

std::vector<uint64_t> LogIndex::PickReady(size_t max, const std::vector<uint32_t>& kinds,
                                          absl::Time now) {
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    const uint64_t id = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    Entry& e = entries_.at(id);
    e.not_before = absl::InfinitePast();
    MaybeReady(e);
  }
  // The first `max` of each kind asked for, merged by order.
  std::vector<OrderKey> candidates;
  auto take = [&](const std::set<OrderKey>& ready) {
    size_t n = 0;
    for (auto it = ready.begin(); it != ready.end() && n < max; ++it, ++n) {
      candidates.push_back(*it);
    }
  };
  if (kinds.empty()) {
    for (const auto& [kind, ready] : ready_) take(ready);
  } else {
    for (uint32_t kind : kinds) {
      auto r = ready_.find(kind);
      if (r != ready_.end()) take(r->second);
    }
  }
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  if (candidates.size() > max) candidates.resize(max);
  std::vector<uint64_t> out;
  out.reserve(candidates.size());
  for (const OrderKey& k : candidates) out.push_back(k.second);
  return out;
}

std::vector<uint64_t> LogIndex::DeadAfter(uint64_t after, size_t max) const {
  std::vector<uint64_t> out;
  for (auto it = dead_.upper_bound(after); it != dead_.end() && out.size() < max; ++it) {
    out.push_back(*it);
  }
  return out;
}

void LogIndex::Expire(absl::Time now) {
  while (!expiry_.empty() && expiry_.begin()->first <= now) {
    Remove(expiry_.begin()->second);
  }
}

std::vector<uint64_t> LogIndex::HomedIn(uint64_t segment) const {
  auto it = homed_.find(segment);
  if (it == homed_.end()) return {};
  return std::vector<uint64_t>(it->second.begin(), it->second.end());
}

std::optional<CarryBody> LogIndex::CarryOf(uint64_t id) const {
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  const Entry& e = it->second;
  CarryBody c;
  c.set_id(e.id);
  c.set_order_seq(e.order_seq);
  AppendBody* a = c.mutable_append();
  a->set_kind(e.kind);
  for (const std::string& k : e.ordering_keys) a->add_ordering_keys(k);
  a->set_idempotency_key(e.idempotency_key);
  a->set_enqueue_unix_micros(absl::ToUnixMicros(e.enqueue_time));
  c.set_state(StateToInt(e.state));
  c.set_attempts(e.attempts);
  c.set_in_doubt(e.in_doubt);
  c.set_open_attempt(e.open_attempt);
  c.set_last_error(e.last_error);
  if (e.state != DeliveryState::kPending) {
    c.set_finish_unix_micros(absl::ToUnixMicros(e.finish_time));
  }
  return c;
}

bool LogIndex::NeedsPayload(uint64_t id) const {
  auto it = entries_.find(id);
  return it != entries_.end() && it->second.state != DeliveryState::kDelivered;
}

void LogIndex::Rehome(uint64_t id, Location where, bool with_payload) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  e.has_payload = with_payload;
  SetHome(e, where);
  UpdateLiveBytes(e);
}

uint64_t LogIndex::LiveBytes(uint64_t segment) const {
  auto it = live_bytes_.find(segment);
  return it == live_bytes_.end() ? 0 : it->second;
}

LogIndex::Counts LogIndex::GetCounts() const {
  Counts c;
  c.pending = pending_by_enqueue_.size();
  c.leased = leased_;
  c.dead = dead_.size();
  c.delivered = expiry_.size();
  c.pending_by_kind = pending_by_kind_;
  if (!pending_by_enqueue_.empty()) c.oldest_pending = pending_by_enqueue_.begin()->first;
  return c;
}

}  // namespace userpilot::gateway::delivery_log
