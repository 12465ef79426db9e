#include "server/webhooks.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/event_body.h"
#include "server/json_out.h"
#include "server/reply.h"
#include "server/system_streams.h"

namespace eventstore {

using metrics::store::Event;
using metrics::store::EventBackend;
using metrics::store::ExpectedVersion;
using metrics::store::NewEvent;

struct WebhookService::Metrics {
  metrics::CounterFamily deliveries;
  metrics::GaugeFamily lag;
  metrics::GaugeFamily position;
};

// One subscription's delivery state. The dispatcher thread owns `position` and `client`; the
// rest is read and written under the service's mutex (and `stop`/`paused` are atomics so the
// thread can look without it).
struct WebhookService::Dispatcher {
  Subscription sub;  // guarded by the service's mutex (paused mirrored below)
  std::atomic<bool> stop{false};
  std::atomic<bool> paused{false};
  std::atomic<uint64_t> position{0};
  uint64_t checkpointed = 0;  // dispatcher thread only
  std::chrono::steady_clock::time_point last_checkpoint;
  std::unique_ptr<metrics::instrument::OutboundClient> client;
  std::string path;  // of the URL
  std::mutex wake_mu;
  std::condition_variable wake;
  std::thread thread;
};

namespace {

bool ValidName(std::string_view n) {
  return !n.empty() && n.size() <= 56 && std::all_of(n.begin(), n.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// Splits http(s)://authority[/path] into its origin and path ("/" when none).
bool SplitUrl(const std::string& url, std::string* origin, std::string* path) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return false;
  const std::string s = url.substr(0, scheme);
  if (s != "http" && s != "https") return false;
  const size_t slash = url.find('/', scheme + 3);
  *origin = url.substr(0, slash);
  *path = slash == std::string::npos ? "/" : url.substr(slash);
  return origin->size() > scheme + 3 && url.find_first_of(" \r\n#") == std::string::npos;
}

absl::Status Validate(const Subscription& s) {
  if (!ValidName(s.name)) {
    return absl::InvalidArgumentError("\"name\" must be 1-56 characters [A-Za-z0-9_.-]");
  }
  std::string origin, path;
  if (!SplitUrl(s.url, &origin, &path)) {
    return absl::InvalidArgumentError("\"url\" must be http(s)://host[:port][/path]");
  }
  if (s.secret.empty()) return absl::InvalidArgumentError("\"secret\" must not be empty");
  if (!s.event_types.empty() && !s.stream_prefix.empty()) {
    return absl::InvalidArgumentError("give \"event_types\" or \"stream_prefix\", not both");
  }
  return absl::OkStatus();
}

bool Matches(const Subscription& s, const Event& e) {
  if (IsSystemStream(e.stream)) return false;
  if (!s.event_types.empty()) {
    return std::find(s.event_types.begin(), s.event_types.end(), e.type) != s.event_types.end();
  }
  return e.stream.rfind(s.stream_prefix, 0) == 0;
}

nlohmann::json ToJson(const Subscription& s) {
  return {{"name", s.name},
          {"url", s.url},
          {"event_types", s.event_types},
          {"stream_prefix", s.stream_prefix},
          {"secret", s.secret}};
}

}  // namespace

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 15]);
  }
  return out;
}

WebhookService::WebhookService(EventBackend* store, Options options)
    : store_(store), options_(options) {}

absl::Status WebhookService::Record(const char* stream, const char* type, const std::string& json) {
  auto r = store_->Append(stream, ExpectedVersion::kAny, {NewEvent{type, json, ""}});
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::StatusOr<std::unique_ptr<WebhookService>> WebhookService::Start(EventBackend* store,
                                                                      metrics::Registry* registry,
                                                                      Options options) {
  std::unique_ptr<WebhookService> w(new WebhookService(store, options));
  metrics::Registry* outbound_registry = registry;
  static metrics::Registry* unexposed = new metrics::Registry();  // outbound_* with no registry
  if (outbound_registry == nullptr) outbound_registry = unexposed;
  auto outbound = metrics::instrument::OutboundMetrics::Create(*outbound_registry);
  if (!outbound.ok()) return outbound.status();
  w->outbound_ = *std::move(outbound);
  if (registry != nullptr) {
    auto d = registry->AddCounter(
        {.name = "webhook_deliveries_total",
         .help = "Webhook delivery attempts, by subscription and outcome (delivered, failed).",
         .label_names = {"subscription", "outcome"}});
    auto lag = registry->AddGauge(
        {.name = "webhook_lag_seconds",
         .help = "From the last delivered event being stored to its delivery being acknowledged.",
         .label_names = {"subscription"}});
    auto pos = registry->AddGauge(
        {.name = "webhook_position",
         .help = "Global position up to which the subscription has delivered (or skipped).",
         .label_names = {"subscription"}});
    if (!d.ok()) return d.status();
    if (!lag.ok()) return lag.status();
    if (!pos.ok()) return pos.status();
    w->metrics_.reset(new Metrics{*std::move(d), *std::move(lag), *std::move(pos)});
  }
  // Rebuild: the subscriptions in order, then the last checkpoint of each.
  std::map<std::string, Subscription> subs;
  std::map<std::string, uint64_t> positions;
  for (const char* stream : {kSubscriptions, kCheckpoints}) {
    for (uint64_t from = 1;;) {
      auto page = store->ReadStream(stream, from, 1000);
      if (!page.ok() && !absl::IsNotFound(page.status())) return page.status();
      if (!page.ok() || page->empty()) break;
      for (const Event& e : *page) {
        // Only this service writes these streams (the API refuses them), but an embedding program
        // or an imported store may hold anything: a record that is not ours is skipped, said on
        // stderr, and must not keep the server from starting.
        const auto j = nlohmann::json::parse(e.payload, nullptr, false);
        if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) {
          ReportForeignRecord("webhooks", e);
          continue;
        }
        const std::string name = j["name"];
        try {
          if (e.type == "subscription.created") {
            Subscription s{.name = name,
                           .url = j.value("url", ""),
                           .event_types = j.value("event_types", std::vector<std::string>{}),
                           .stream_prefix = j.value("stream_prefix", ""),
                           .secret = j.value("secret", "")};
            if (!Validate(s).ok()) {
              ReportForeignRecord("webhooks", e);
              continue;
            }
            subs[name] = std::move(s);
            positions[name] = j.value("position", uint64_t{0});
          } else if (e.type == "subscription.deleted") {
            subs.erase(name);
          } else if (e.type == "subscription.paused" && subs.count(name)) {
            subs[name].paused = true;
          } else if (e.type == "subscription.resumed" && subs.count(name)) {
            subs[name].paused = false;
          } else if (e.type == "webhook.checkpoint" && subs.count(name)) {
            positions[name] = std::max(positions[name], j.value("position", uint64_t{0}));
          }
        } catch (const nlohmann::json::exception&) {  // a field of the wrong JSON type
          ReportForeignRecord("webhooks", e);
        }
      }
      from = page->back().stream_version + 1;
    }
  }
  std::lock_guard<std::mutex> lock(w->mu_);
  for (const auto& [name, s] : subs) w->StartDispatcher(s, positions[name]);
  return w;
}

WebhookService::~WebhookService() {
  std::map<std::string, std::unique_ptr<Dispatcher>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(dispatchers_);
  }
  for (auto& [name, d] : all) {
    d->stop = true;
    d->wake.notify_all();
  }
  for (auto& [name, d] : all) {
    if (d->thread.joinable()) d->thread.join();
  }
}

// Requires mu_.
void WebhookService::StartDispatcher(const Subscription& s, uint64_t position) {
  auto d = std::make_unique<Dispatcher>();
  d->sub = s;
  d->paused = s.paused;
  d->position = position;
  d->checkpointed = position;
  d->last_checkpoint = std::chrono::steady_clock::now();
  std::string origin;
  SplitUrl(s.url, &origin, &d->path);
  auto client = metrics::instrument::OutboundClient::Create(outbound_.get(),
                                                            {.target = "webhook." + s.name,
                                                             .base_url = origin,
                                                             .connect_timeout = options_.timeout,
                                                             .timeout = options_.timeout});
  if (client.ok()) d->client = *std::move(client);
  Dispatcher* raw = d.get();
  dispatchers_[s.name] = std::move(d);
  raw->thread = std::thread([this, raw, s] { Run(raw, s); });
}

absl::Status WebhookService::Add(const Subscription& s) {
  if (absl::Status st = Validate(s); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  if (dispatchers_.count(s.name)) {
    return absl::AlreadyExistsError(absl::StrCat("subscription ", s.name, " exists"));
  }
  if (dispatchers_.size() >= kMaxSubscriptions) {
    return absl::ResourceExhaustedError(
        absl::StrCat("at most ", kMaxSubscriptions, " subscriptions"));
  }
  const uint64_t start = store_->LastPosition();
  nlohmann::json j = ToJson(s);
  j["position"] = start;
  if (absl::Status st = Record(kSubscriptions, "subscription.created", j.dump()); !st.ok()) {
    return st;
  }
  Subscription copy = s;
  copy.paused = false;
  StartDispatcher(copy, start);
  return absl::OkStatus();
}

absl::Status WebhookService::Remove(const std::string& name) {
  std::unique_ptr<Dispatcher> d;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = dispatchers_.find(name);
    if (it == dispatchers_.end()) return absl::NotFoundError("no such subscription");
    if (absl::Status st =
            Record(kSubscriptions, "subscription.deleted", nlohmann::json({{"name", name}}).dump());
        !st.ok()) {
      return st;
    }
    d = std::move(it->second);
    dispatchers_.erase(it);
  }
  d->stop = true;
  d->wake.notify_all();
  if (d->thread.joinable()) d->thread.join();
  return absl::OkStatus();
}

absl::Status WebhookService::SetPaused(const std::string& name, bool paused) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = dispatchers_.find(name);
  if (it == dispatchers_.end()) return absl::NotFoundError("no such subscription");
  if (absl::Status st =
          Record(kSubscriptions, paused ? "subscription.paused" : "subscription.resumed",
                 nlohmann::json({{"name", name}}).dump());
      !st.ok()) {
    return st;
  }
  it->second->sub.paused = paused;
  it->second->paused = paused;
  it->second->wake.notify_all();
  return absl::OkStatus();
}

std::vector<SubscriptionStatus> WebhookService::List() const {
  std::vector<SubscriptionStatus> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, d] : dispatchers_) out.push_back({d->sub, d->position.load()});
  return out;
}

void WebhookService::Checkpoint(Dispatcher* d, const std::string& name) {
  const uint64_t p = d->position.load();
  if (p == d->checkpointed) return;
  if (Record(kCheckpoints, "webhook.checkpoint",
             nlohmann::json({{"name", name}, {"position", p}}).dump())
          .ok()) {
    d->checkpointed = p;
  }
  d->last_checkpoint = std::chrono::steady_clock::now();
}

void WebhookService::Run(Dispatcher* d, const Subscription sub) {
  const std::string& name = sub.name;
  auto idle = [&](std::chrono::milliseconds for_how_long) {
    std::unique_lock<std::mutex> lock(d->wake_mu);
    d->wake.wait_for(lock, for_how_long, [&] { return d->stop.load(); });
  };
  while (!d->stop) {
    if (d->paused || d->client == nullptr) {
      idle(options_.poll);
      continue;
    }
    auto page = store_->ReadAll(d->position + 1, 100);
    if (!page.ok() || page->empty()) {
      if (std::chrono::steady_clock::now() - d->last_checkpoint > std::chrono::seconds(1)) {
        Checkpoint(d, name);
      }
      idle(options_.poll);
      continue;
    }
    for (const Event& e : *page) {
      if (d->stop || d->paused) break;
      if (!Matches(sub, e)) {
        d->position = e.position;
        continue;
      }
      std::string body;
      AppendEvent(&body, e, /*with_stream=*/true);
      const httplib::Headers headers = {
          {"X-Eventstore-Subscription", name},
          {"X-Eventstore-Position", std::to_string(e.position)},
          {"X-Eventstore-Event-Id",
           e.id.size() == 16 ? FormatUuid(e.id) : absl::StrCat("position-", e.position)},
          {"X-Eventstore-Signature", "sha256=" + HmacSha256Hex(sub.secret, body)}};
      std::chrono::milliseconds backoff = options_.initial_backoff;
      bool delivered = false;
      while (!d->stop) {
        metrics::instrument::OutboundReply r =
            d->client->Send("POST", d->path, body, "application/json", headers);
        if (r.ok()) {
          delivered = true;
          if (metrics_) {
            metrics_->deliveries.WithLabelValues(name, "delivered").Inc();
            metrics_->lag.WithLabelValues(name).Set(
                std::max(0.0, WallSeconds() - static_cast<double>(e.timestamp_ns) * 1e-9));
          }
          break;
        }
        if (metrics_) metrics_->deliveries.WithLabelValues(name, "failed").Inc();
        std::chrono::milliseconds wait = backoff;
        if (r.status == 429 || r.status == 503) {
          auto it = r.headers.find("Retry-After");
          if (it != r.headers.end()) {
            if (auto asked = metrics::instrument::ParseRetryAfter(
                    it->second, std::chrono::system_clock::now())) {
              wait = std::min(*asked, options_.max_backoff);
            }
          }
        }
        idle(wait);
        backoff = std::min(backoff * 2, options_.max_backoff);
      }
      if (!delivered) break;  // stopping: this event is delivered after the restart
      d->position = e.position;
      if (std::chrono::steady_clock::now() - d->last_checkpoint > std::chrono::seconds(1)) {
        Checkpoint(d, name);
      }
    }
    if (metrics_) metrics_->position.WithLabelValues(name).Set(static_cast<double>(d->position));
  }
  Checkpoint(d, name);
}

}  // namespace eventstore
