#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "ft/event_journal.hpp"

using ft::event_journal;
using ft::event_rate;
using ft::event_record;

namespace {

event_record ev(uint8_t severity, std::string kind = "k") {
  event_record x;
  x.severity = severity;
  x.kind = std::move(kind);
  x.timestamp_ms = 1;
  return x;
}

std::vector<uint64_t> ids(const std::vector<event_record>& xs) {
  std::vector<uint64_t> result;
  for (auto& x : xs)
    result.push_back(x.id);
  return result;
}

} // namespace

TEST_CASE("the journal numbers events from 1 and pages by cursor",
          "[event_journal]") {
  event_journal j{10};
  CHECK(j.last_id() == 0);
  CHECK(j.since(0).empty());
  for (int i = 0; i < 5; ++i)
    CHECK(j.append(ev(1)) == static_cast<uint64_t>(i + 1));
  CHECK(ids(j.since(0)) == std::vector<uint64_t>{1, 2, 3, 4, 5});
  CHECK(ids(j.since(3)) == std::vector<uint64_t>{4, 5});
  CHECK(j.since(5).empty());
  CHECK(j.since(99).empty());
  // A limit returns the oldest ones, so paging misses nothing.
  uint64_t cursor = 0;
  auto page = j.since(0, 2, 1, &cursor);
  CHECK(ids(page) == std::vector<uint64_t>{1, 2});
  CHECK(cursor == 2);
  page = j.since(cursor, 2, 1, &cursor);
  CHECK(ids(page) == std::vector<uint64_t>{3, 4});
  page = j.since(cursor, 2, 1, &cursor);
  CHECK(ids(page) == std::vector<uint64_t>{5});
  CHECK(cursor == 5);
  page = j.since(cursor, 2, 1, &cursor);
  CHECK(page.empty());
  CHECK(cursor == 5);
}

TEST_CASE("the journal keeps the newest events up to its capacity",
          "[event_journal]") {
  event_journal j{3};
  for (int i = 0; i < 7; ++i)
    j.append(ev(1, "e" + std::to_string(i + 1)));
  CHECK(j.size() == 3);
  CHECK(j.last_id() == 7);
  auto xs = j.since(0);
  REQUIRE(ids(xs) == std::vector<uint64_t>{5, 6, 7});
  CHECK(xs.front().kind == "e5");
  // A reader that fell behind sees the gap: the first id is above its
  // cursor + 1.
  CHECK(j.since(2).front().id == 5);
  CHECK(ids(j.since(6)) == std::vector<uint64_t>{7});
}

TEST_CASE("a severity filter skips events but moves the cursor past them",
          "[event_journal]") {
  event_journal j{10};
  for (uint8_t s : {1, 3, 1, 4, 2})
    j.append(ev(s));
  uint64_t cursor = 0;
  auto xs = j.since(0, 100, 3, &cursor);
  CHECK(ids(xs) == std::vector<uint64_t>{2, 4});
  CHECK(cursor == 5);
  xs = j.since(0, 1, 3, &cursor);
  CHECK(ids(xs) == std::vector<uint64_t>{2});
  CHECK(cursor == 2);
}

TEST_CASE("the journal takes appends from many threads without losing one",
          "[event_journal]") {
  event_journal j{100000};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2500; ++i)
        j.append(ev(1));
    });
  for (auto& t : threads)
    t.join();
  CHECK(j.last_id() == 10000);
  auto xs = j.since(0);
  REQUIRE(xs.size() == 10000);
  for (size_t i = 0; i < xs.size(); ++i)
    REQUIRE(xs[i].id == i + 1);
}

TEST_CASE("event_rate counts per bucket over a sliding span", "[event_rate]") {
  event_rate r{5, 1000};
  CHECK(r.counts(10'000) == std::vector<uint64_t>{0, 0, 0, 0, 0});
  r.add(10'000);
  r.add(10'999);
  r.add(12'500, 3);
  CHECK(r.counts(12'600) == std::vector<uint64_t>{0, 0, 2, 0, 3});
  CHECK(r.total(12'600) == 5);
  // Time moves on: buckets fall out of the span.
  CHECK(r.counts(14'000) == std::vector<uint64_t>{2, 0, 3, 0, 0});
  CHECK(r.counts(15'000) == std::vector<uint64_t>{0, 3, 0, 0, 0});
  CHECK(r.total(15'000) == 3);
  // A late occurrence still counts in its own bucket while in the span.
  r.add(13'100);
  CHECK(r.counts(15'000) == std::vector<uint64_t>{0, 3, 1, 0, 0});
  // One older than the span is dropped.
  r.add(9'000);
  CHECK(r.total(15'000) == 4);
  // A long silence clears everything.
  CHECK(r.total(100'000) == 0);
  r.add(100'000);
  CHECK(r.counts(100'000) == std::vector<uint64_t>{0, 0, 0, 0, 1});
}
