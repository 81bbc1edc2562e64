// Metrics: a daemon's one metrics registry, served as Prometheus' text format on /metrics.
// Built on prometheus-cpp's core (its Registry, families and text serializer): counters,
// gauges and histograms that the code updates as things happen, plus values read only when
// scraped (a count another component keeps, the size of a live table). airlockd and both
// connectors each own one. Counters, gauges and histograms are thread-safe (prometheus-cpp's
// own atomics); the scrape-time readers run on the thread that calls text(), which is the
// daemon's io thread.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_type.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/http_server.h"

namespace airlock {

inline constexpr prometheus::MetricType kCounter = prometheus::MetricType::Counter;
inline constexpr prometheus::MetricType kGauge = prometheus::MetricType::Gauge;

class Metrics {
 public:
  using Labels = std::map<std::string, std::string>;
  using Sample = std::pair<Labels, double>;

  Metrics();

  prometheus::Family<prometheus::Counter>& counter(const std::string& name,
                                                   const std::string& help);
  prometheus::Family<prometheus::Gauge>& gauge(const std::string& name, const std::string& help);
  prometheus::Family<prometheus::Histogram>& histogram(const std::string& name,
                                                       const std::string& help);

  // A metric whose samples are read when scraped. `type` is Counter or Gauge.
  void read_at_scrape(const std::string& name, prometheus::MetricType type, const std::string& help,
                      std::function<std::vector<Sample>()> read);
  // A value known now, for a registry built at each scrape.
  void add(const std::string& name, prometheus::MetricType type, const std::string& help,
           double value);
  // The same with one unlabelled sample.
  void read_at_scrape(const std::string& name, prometheus::MetricType type, const std::string& help,
                      std::function<double()> read);

  // Every metric in the text exposition format (version 0.0.4).
  std::string text() const;
  // text() as the answer to GET /metrics.
  HttpResponse response() const;

 private:
  struct ScrapeRead {
    std::string name, help;
    prometheus::MetricType type;
    std::function<std::vector<Sample>()> read;
  };
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<ScrapeRead> scrape_reads_;
};

// Buckets for latencies in seconds, from 0.5 ms to 60 s.
const std::vector<double>& latency_buckets();

}  // namespace airlock
