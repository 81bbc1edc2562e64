#include "common/metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace airlock {

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {}

prometheus::Family<prometheus::Counter>& Metrics::counter(const std::string& name,
                                                          const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
}

prometheus::Family<prometheus::Gauge>& Metrics::gauge(const std::string& name,
                                                      const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
}

prometheus::Family<prometheus::Histogram>& Metrics::histogram(const std::string& name,
                                                              const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
}

void Metrics::read_at_scrape(const std::string& name, prometheus::MetricType type,
                             const std::string& help, std::function<std::vector<Sample>()> read) {
  scrape_reads_.push_back({name, help, type, std::move(read)});
}

void Metrics::read_at_scrape(const std::string& name, prometheus::MetricType type,
                             const std::string& help, std::function<double()> read) {
  read_at_scrape(name, type, help, [read = std::move(read)] {
    return std::vector<Sample>{{{}, read()}};
  });
}

void Metrics::add(const std::string& name, prometheus::MetricType type, const std::string& help,
                  double value) {
  read_at_scrape(name, type, help, [value] { return value; });
}

std::string Metrics::text() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (const auto& s : scrape_reads_) {
    prometheus::MetricFamily f{s.name, s.help, s.type, {}};
    for (const auto& [labels, value] : s.read()) {
      prometheus::ClientMetric m;
      for (const auto& [k, v] : labels) m.label.push_back({k, v});
      if (s.type == prometheus::MetricType::Counter) {
        m.counter.value = value;
      } else {
        m.gauge.value = value;
      }
      f.metric.push_back(std::move(m));
    }
    families.push_back(std::move(f));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

HttpResponse Metrics::response() const {
  auto r = HttpResponse::json(200, text());
  r.content_type = "text/plain; version=0.0.4";
  return r;
}

const std::vector<double>& latency_buckets() {
  static const std::vector<double> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  return kBuckets;
}

}  // namespace airlock
