#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ft/metrics.hpp"

namespace {

using ft::label_set;
using ft::metrics_registry;

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double qnan = std::numeric_limits<double>::quiet_NaN();

} // namespace

TEST_CASE("render matches the text format 0.0.4 exactly", "[metrics]") {
  metrics_registry reg;
  // Registered out of alphabetical order: the output keeps this order.
  reg.gauge("ft_open_circuits", "Circuits currently open.").set(2);
  reg.counter("ft_calls_total", "Calls made through a breaker.",
              {{"scope", "worker"}})
    .inc(3);
  reg.counter("ft_calls_total", "Calls made through a breaker.",
              {{"scope", "hardware"}})
    .inc(0.5);
  // The caller's label order (zone before area) survives.
  reg.gauge("ft_temperature", "Made-up gauge.", {{"zone", "b"}, {"area", "a"}})
    .set(-1.25);
  auto& h = reg.histogram("ft_latency_seconds", "Call latency.",
                          {{"op", "get"}}, {0.25, 0.5, 1});
  // Values on a bound count in that bucket: `le` is inclusive.
  for (auto x : {0.25, 0.125, 0.5, 1.0, 2.0})
    h.observe(x);
  CHECK(reg.render()
        == "# HELP ft_open_circuits Circuits currently open.\n"
           "# TYPE ft_open_circuits gauge\n"
           "ft_open_circuits 2\n"
           "# HELP ft_calls_total Calls made through a breaker.\n"
           "# TYPE ft_calls_total counter\n"
           "ft_calls_total{scope=\"worker\"} 3\n"
           "ft_calls_total{scope=\"hardware\"} 0.5\n"
           "# HELP ft_temperature Made-up gauge.\n"
           "# TYPE ft_temperature gauge\n"
           "ft_temperature{zone=\"b\",area=\"a\"} -1.25\n"
           "# HELP ft_latency_seconds Call latency.\n"
           "# TYPE ft_latency_seconds histogram\n"
           "ft_latency_seconds_bucket{op=\"get\",le=\"0.25\"} 2\n"
           "ft_latency_seconds_bucket{op=\"get\",le=\"0.5\"} 3\n"
           "ft_latency_seconds_bucket{op=\"get\",le=\"1\"} 4\n"
           "ft_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 5\n"
           "ft_latency_seconds_sum{op=\"get\"} 3.875\n"
           "ft_latency_seconds_count{op=\"get\"} 5\n");
}

TEST_CASE("an empty registry renders nothing", "[metrics]") {
  metrics_registry reg;
  CHECK(reg.render().empty());
}

TEST_CASE("an empty help text omits the HELP line", "[metrics]") {
  metrics_registry reg;
  reg.counter("x_total", "").inc();
  CHECK(reg.render() == "# TYPE x_total counter\nx_total 1\n");
}

TEST_CASE("help and label values are escaped", "[metrics]") {
  metrics_registry reg;
  reg.gauge("g", "line one\nback\\slash \"quoted\"",
            {{"path", "C:\\dir\n\"x\""}})
    .set(1);
  // HELP escapes backslash and newline only; label values also quotes.
  CHECK(reg.render()
        == "# HELP g line one\\nback\\\\slash \"quoted\"\n"
           "# TYPE g gauge\n"
           "g{path=\"C:\\\\dir\\n\\\"x\\\"\"} 1\n");
}

TEST_CASE("constant labels come first in every sample", "[metrics]") {
  metrics_registry reg{{{"node", "n1"}, {"dc", "eu"}}};
  CHECK(reg.const_labels() == label_set{{"node", "n1"}, {"dc", "eu"}});
  reg.counter("c_total", "C.").inc(7);
  reg.gauge("g", "G.", {{"scope", "worker"}}).set(1);
  reg.histogram("h", "H.", {}, {1}).observe(0.5);
  CHECK(reg.render()
        == "# HELP c_total C.\n"
           "# TYPE c_total counter\n"
           "c_total{node=\"n1\",dc=\"eu\"} 7\n"
           "# HELP g G.\n"
           "# TYPE g gauge\n"
           "g{node=\"n1\",dc=\"eu\",scope=\"worker\"} 1\n"
           "# HELP h H.\n"
           "# TYPE h histogram\n"
           "h_bucket{node=\"n1\",dc=\"eu\",le=\"1\"} 1\n"
           "h_bucket{node=\"n1\",dc=\"eu\",le=\"+Inf\"} 1\n"
           "h_sum{node=\"n1\",dc=\"eu\"} 0.5\n"
           "h_count{node=\"n1\",dc=\"eu\"} 1\n");
  SECTION("a single constant label in braces") {
    metrics_registry one{{{"node", "n2"}}};
    one.gauge("up", "").set(1);
    CHECK(one.render() == "# TYPE up gauge\nup{node=\"n2\"} 1\n");
  }
  SECTION("a series label may not repeat a constant one") {
    CHECK_THROWS_AS(reg.counter("d_total", "D.", {{"node", "n2"}}),
                    std::invalid_argument);
  }
}

TEST_CASE("constant labels follow the naming rules", "[metrics]") {
  CHECK_THROWS_AS(metrics_registry(label_set{{"__node", "n1"}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(metrics_registry({{"node", "a"}, {"node", "b"}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(metrics_registry(label_set{{"le", "1"}}),
                  std::invalid_argument);
}

TEST_CASE("the same name and labels give the same series", "[metrics]") {
  metrics_registry reg;
  auto& a = reg.counter("c_total", "C.", {{"x", "1"}, {"y", "2"}});
  auto& b = reg.counter("c_total", "C.", {{"x", "1"}, {"y", "2"}});
  CHECK(&a == &b);
  // Label order does not make another series; the first order is rendered.
  auto& c = reg.counter("c_total", "C.", {{"y", "2"}, {"x", "1"}});
  CHECK(&a == &c);
  auto& d = reg.counter("c_total", "C.", {{"x", "1"}, {"y", "3"}});
  CHECK(&a != &d);
  a.inc();
  c.inc(2);
  CHECK(b.value() == 3);
  CHECK(d.value() == 0);
  CHECK(reg.render()
        == "# HELP c_total C.\n"
           "# TYPE c_total counter\n"
           "c_total{x=\"1\",y=\"2\"} 3\n"
           "c_total{x=\"1\",y=\"3\"} 0\n");
  auto& g = reg.gauge("g", "G.");
  CHECK(&g == &reg.gauge("g", "G."));
  auto& h = reg.histogram("h", "H.", {}, {1, 2});
  CHECK(&h == &reg.histogram("h", "H.", {}, {1, 2}));
  // A trailing +Inf is the implicit bucket: the same layout.
  CHECK(&h == &reg.histogram("h", "H.", {}, {1, 2, inf}));
  CHECK(h.bounds() == std::vector<double>{1, 2});
}

TEST_CASE("reusing a name with another shape is a logic error", "[metrics]") {
  metrics_registry reg;
  reg.counter("m", "M.");
  reg.histogram("h", "H.", {}, {1, 2});
  CHECK_THROWS_AS(reg.gauge("m", "M."), std::logic_error);
  CHECK_THROWS_AS(reg.histogram("m", "M."), std::logic_error);
  CHECK_THROWS_AS(reg.counter("h", "H."), std::logic_error);
  CHECK_THROWS_AS(reg.histogram("h", "H.", {}, {1, 3}), std::logic_error);
  CHECK_THROWS_AS(reg.histogram("h", "H.", {}), std::logic_error);
  CHECK_THROWS_AS(reg.counter("m", "Other help."), std::logic_error);
  // invalid_argument derives from logic_error; these must not be that.
  try {
    reg.gauge("m", "M.");
    FAIL("no exception");
  } catch (const std::invalid_argument&) {
    FAIL("type clash reported as invalid_argument");
  } catch (const std::logic_error& e) {
    CHECK(std::string{e.what()}
          == "metrics: m is a counter, requested as gauge");
  }
  // Nothing of the failed calls shows up.
  CHECK(reg.render()
        == "# HELP m M.\n# TYPE m counter\nm 0\n"
           "# HELP h H.\n# TYPE h histogram\n"
           "h_bucket{le=\"1\"} 0\nh_bucket{le=\"2\"} 0\n"
           "h_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
}

TEST_CASE("names follow the Prometheus rules", "[metrics]") {
  CHECK(ft::is_valid_metric_name("ft_calls_total"));
  CHECK(ft::is_valid_metric_name(":rule:ratio5m"));
  CHECK(ft::is_valid_metric_name("_x"));
  CHECK(ft::is_valid_metric_name("__x"));
  CHECK_FALSE(ft::is_valid_metric_name(""));
  CHECK_FALSE(ft::is_valid_metric_name("9lives"));
  CHECK_FALSE(ft::is_valid_metric_name("a-b"));
  CHECK_FALSE(ft::is_valid_metric_name("a b"));
  CHECK_FALSE(ft::is_valid_metric_name("caf\xc3\xa9"));
  CHECK(ft::is_valid_label_name("scope"));
  CHECK(ft::is_valid_label_name("_x9"));
  CHECK_FALSE(ft::is_valid_label_name(""));
  CHECK_FALSE(ft::is_valid_label_name("__name__"));
  CHECK_FALSE(ft::is_valid_label_name("a:b"));
  CHECK_FALSE(ft::is_valid_label_name("1a"));
  CHECK_FALSE(ft::is_valid_label_name("a.b"));
  metrics_registry reg;
  CHECK_THROWS_AS(reg.counter("9lives", "h"), std::invalid_argument);
  CHECK_THROWS_AS(reg.gauge("a-b", "h"), std::invalid_argument);
  CHECK_THROWS_AS(reg.histogram("", "h"), std::invalid_argument);
  CHECK_THROWS_AS(reg.counter("ok", "h", {{"__x", "1"}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(reg.counter("ok", "h", {{"a:b", "1"}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(reg.counter("ok", "h", {{"a", "1"}, {"a", "2"}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(reg.histogram("lat", "h", {{"le", "1"}}),
                  std::invalid_argument);
  // `le` is only reserved on histograms.
  CHECK_NOTHROW(reg.gauge("ok_gauge", "h", {{"le", "1"}}));
  // Label values may be anything.
  CHECK_NOTHROW(reg.counter("ok", "h", {{"a", ""}, {"b", "any \"thing\""}}));
}

TEST_CASE("histogram buckets must increase", "[metrics]") {
  metrics_registry reg;
  CHECK_THROWS_AS(reg.histogram("h1", "h", {}, {1, 0.5}),
                  std::invalid_argument);
  CHECK_THROWS_AS(reg.histogram("h2", "h", {}, {1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(reg.histogram("h3", "h", {}, {qnan}), std::invalid_argument);
  CHECK_THROWS_AS(reg.histogram("h4", "h", {}, {1, inf, 2}),
                  std::invalid_argument);
  CHECK_THROWS_AS(ft::histogram({2, 1}), std::invalid_argument);
  // No bounds at all leaves just +Inf.
  auto& h = reg.histogram("h5", "H.", {}, {});
  h.observe(-3);
  CHECK(reg.render()
        == "# HELP h5 H.\n# TYPE h5 histogram\n"
           "h5_bucket{le=\"+Inf\"} 1\nh5_sum -3\nh5_count 1\n");
}

TEST_CASE("histograms count each observation once, le inclusive",
          "[metrics]") {
  ft::histogram h{{1, 2, 4}};
  for (auto x : {-inf, 0.0, 1.0, 1.5, 2.0, 4.0, 4.5, inf})
    h.observe(x);
  auto snap = h.snapshot();
  CHECK(snap.buckets == std::vector<uint64_t>{3, 5, 6, 8});
  CHECK(snap.count == 8);
  CHECK(std::isnan(snap.sum)); // -inf + inf
  SECTION("NaN lands in +Inf only") {
    ft::histogram g{{1}};
    g.observe(qnan);
    g.observe(0.5);
    auto s = g.snapshot();
    CHECK(s.buckets == std::vector<uint64_t>{1, 2});
    CHECK(s.count == 2);
    CHECK(std::isnan(s.sum));
  }
}

TEST_CASE("bucket layouts", "[metrics]") {
  CHECK(ft::exponential_buckets(1, 2, 4) == std::vector<double>{1, 2, 4, 8});
  CHECK(ft::exponential_buckets(0.5, 10, 1) == std::vector<double>{0.5});
  CHECK_THROWS_AS(ft::exponential_buckets(0, 2, 3), std::invalid_argument);
  CHECK_THROWS_AS(ft::exponential_buckets(-1, 2, 3), std::invalid_argument);
  CHECK_THROWS_AS(ft::exponential_buckets(1, 1, 3), std::invalid_argument);
  CHECK_THROWS_AS(ft::exponential_buckets(1, qnan, 3), std::invalid_argument);
  CHECK_THROWS_AS(ft::exponential_buckets(1, 2, 0), std::invalid_argument);
  CHECK_THROWS_AS(ft::exponential_buckets(1e300, 1e10, 3),
                  std::invalid_argument);
  auto& xs = ft::default_latency_buckets();
  REQUIRE(xs.size() == 17);
  CHECK(xs.front() == 50e-6);
  CHECK(xs.back() == 10);
  CHECK_NOTHROW(ft::histogram{xs}); // strictly increasing
  metrics_registry reg;
  reg.histogram("lat_seconds", "L.").observe(0.003);
  auto text = reg.render();
  CHECK(text.find("lat_seconds_bucket{le=\"5e-05\"} 0\n") != std::string::npos);
  CHECK(text.find("lat_seconds_bucket{le=\"0.0025\"} 0\n")
        != std::string::npos);
  CHECK(text.find("lat_seconds_bucket{le=\"0.005\"} 1\n") != std::string::npos);
  CHECK(text.find("lat_seconds_bucket{le=\"10\"} 1\n") != std::string::npos);
  CHECK(text.find("lat_seconds_bucket{le=\"+Inf\"} 1\n") != std::string::npos);
}

TEST_CASE("numbers render as Prometheus spells them", "[metrics]") {
  using ft::render_metric_value;
  CHECK(render_metric_value(0) == "0");
  CHECK(render_metric_value(-0.0) == "0");
  CHECK(render_metric_value(3) == "3");
  CHECK(render_metric_value(-2) == "-2");
  CHECK(render_metric_value(1e6) == "1000000");
  CHECK(render_metric_value(9007199254740992.0) == "9007199254740992");
  CHECK(render_metric_value(1e20) == "1e+20");
  CHECK(render_metric_value(0.1) == "0.1");
  CHECK(render_metric_value(-1.25) == "-1.25");
  CHECK(render_metric_value(5e-05) == "5e-05");
  CHECK(render_metric_value(1.0 / 3) == "0.3333333333333333");
  CHECK(render_metric_value(0.1 + 0.2) == "0.30000000000000004");
  CHECK(render_metric_value(inf) == "+Inf");
  CHECK(render_metric_value(-inf) == "-Inf");
  CHECK(render_metric_value(qnan) == "NaN");
  for (auto x : {0.1, 1.0 / 3, 2.5e-300, 1.7976931348623157e308, 123.456e7,
                 -4.9e-324})
    CHECK(std::strtod(render_metric_value(x).c_str(), nullptr) == x);
  metrics_registry reg;
  reg.gauge("g", "G.").set(-inf);
  reg.gauge("n", "N.").set(qnan);
  CHECK(reg.render()
        == "# HELP g G.\n# TYPE g gauge\ng -Inf\n"
           "# HELP n N.\n# TYPE n gauge\nn NaN\n");
}

TEST_CASE("counters only go up", "[metrics]") {
  metrics_registry reg;
  auto& c = reg.counter("c_total", "C.");
  c.inc();
  c.inc(2.5);
  CHECK(c.value() == 3.5);
  CHECK_THROWS_AS(c.inc(-1), std::invalid_argument);
  CHECK_THROWS_AS(c.inc(qnan), std::invalid_argument);
  CHECK(c.value() == 3.5);
  c.inc(0);
  CHECK(c.value() == 3.5);
}

TEST_CASE("gauges go up and down", "[metrics]") {
  ft::gauge g;
  CHECK(g.value() == 0);
  g.inc();
  g.inc(4);
  g.dec();
  g.dec(0.5);
  CHECK(g.value() == 3.5);
  g.set(-7);
  CHECK(g.value() == -7);
  g.inc(-1);
  CHECK(g.value() == -8);
}

TEST_CASE("removed series stop rendering but stay usable", "[metrics]") {
  metrics_registry reg;
  auto& w1 = reg.gauge("state", "S.", {{"key", "w1"}});
  auto& w2 = reg.gauge("state", "S.", {{"key", "w2"}});
  w1.set(1);
  w2.set(2);
  reg.counter("other_total", "O.").inc();
  CHECK(reg.remove("state", {{"key", "w1"}}));
  CHECK_FALSE(reg.remove("state", {{"key", "w1"}}));
  CHECK_FALSE(reg.remove("state", {{"key", "w9"}}));
  CHECK_FALSE(reg.remove("nope", {}));
  w1.set(5); // still valid memory, just detached
  CHECK(w1.value() == 5);
  CHECK(reg.render()
        == "# HELP state S.\n# TYPE state gauge\nstate{key=\"w2\"} 2\n"
           "# HELP other_total O.\n# TYPE other_total counter\n"
           "other_total 1\n");
  // Coming back creates a fresh series at the end.
  auto& again = reg.gauge("state", "S.", {{"key", "w1"}});
  CHECK(&again != &w1);
  CHECK(again.value() == 0);
  CHECK(reg.render()
        == "# HELP state S.\n# TYPE state gauge\nstate{key=\"w2\"} 2\n"
           "state{key=\"w1\"} 0\n"
           "# HELP other_total O.\n# TYPE other_total counter\n"
           "other_total 1\n");
  SECTION("a family without series is left out, but keeps its type") {
    CHECK(reg.remove("other_total", {}));
    CHECK(reg.render()
          == "# HELP state S.\n# TYPE state gauge\nstate{key=\"w2\"} 2\n"
             "state{key=\"w1\"} 0\n");
    CHECK_THROWS_AS(reg.gauge("other_total", "O."), std::logic_error);
  }
  SECTION("removal ignores the label order") {
    reg.counter("multi_total", "M.", {{"a", "1"}, {"b", "2"}}).inc();
    CHECK(reg.remove("multi_total", {{"b", "2"}, {"a", "1"}}));
    CHECK(reg.render().find("multi_total{") == std::string::npos);
  }
}

TEST_CASE("concurrent updates are never lost", "[metrics]") {
  constexpr int num_threads = 4;
  constexpr int num_incs = 100000;
  metrics_registry reg;
  std::vector<std::thread> threads;
  for (int t = 0; t < num_threads; ++t)
    threads.emplace_back([&reg, t] {
      // Every thread races to create the same series, then hammers it.
      auto& c = reg.counter("hits_total", "Hits.", {{"kind", "shared"}});
      auto& g = reg.gauge("inflight", "In flight.");
      auto& h = reg.histogram("lat", "L.", {}, {0.5});
      auto& own = reg.counter("per_thread_total", "P.",
                              {{"t", std::to_string(t)}});
      for (int i = 0; i < num_incs; ++i) {
        c.inc();
        g.inc(2);
        g.dec();
        own.inc(0.5);
        if (i % 10 == 0)
          h.observe(i % 20 == 0 ? 0.25 : 1.0);
        if (i % 1000 == 0) // and looks up now and then
          reg.counter("hits_total", "Hits.", {{"kind", "shared"}}).inc(0);
      }
    });
  // Meanwhile, an HTTP thread scrapes; each scrape must be consistent.
  bool consistent = true;
  std::thread scraper{[&] {
    for (int i = 0; i < 200; ++i) {
      auto text = reg.render();
      auto inf_pos = text.find("lat_bucket{le=\"+Inf\"} ");
      auto count_pos = text.find("lat_count ");
      if (inf_pos == std::string::npos || count_pos == std::string::npos)
        continue; // not created yet
      auto inf_val = std::stoull(text.substr(inf_pos + 22));
      auto count_val = std::stoull(text.substr(count_pos + 10));
      if (inf_val != count_val)
        consistent = false;
    }
  }};
  for (auto& th : threads)
    th.join();
  scraper.join();
  CHECK(consistent);
  CHECK(reg.counter("hits_total", "Hits.", {{"kind", "shared"}}).value()
        == num_threads * num_incs);
  CHECK(reg.gauge("inflight", "In flight.").value() == num_threads * num_incs);
  for (int t = 0; t < num_threads; ++t)
    CHECK(reg.counter("per_thread_total", "P.", {{"t", std::to_string(t)}})
            .value()
          == num_incs / 2);
  auto snap = reg.histogram("lat", "L.", {}, {0.5}).snapshot();
  CHECK(snap.count == num_threads * num_incs / 10);
  CHECK(snap.buckets == std::vector<uint64_t>{num_threads * num_incs / 20,
                                              num_threads * num_incs / 10});
  CHECK(snap.sum == num_threads * (num_incs / 20) * 1.25);
}
