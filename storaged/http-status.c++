#include "http-status.h"

#include <capnp/message.h>
#include <kj/debug.h>

#include "hash-trees.h"
#include "membership.h"
#include "service.h"
#include "status-report.h"
#include "transfer.h"

namespace dynkv::storaged {

class HttpStatus::Routes final : public kj::HttpService {
  // Answers each request from one report taken on the event loop: nothing it reads can change
  // while it is built, and nothing is kept between requests.
 public:
  Routes(Service& service, Membership& membership, HashTrees& trees, TransferManager* transfers,
         Metrics& metrics, kj::HttpHeaderTable& headers)
      : service_(service),
        membership_(membership),
        trees_(trees),
        transfers_(transfers),
        metrics_(metrics),
        headers_(headers) {}

  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url,
                            const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                            Response& response) override {
    (void)headers;
    (void)body;  // never read: only GET is served, and kj bounds what it drains
    if (method != kj::HttpMethod::GET) {
      metrics_.refused(Refusal::HTTP);
      kj::HttpHeaders out(headers_);
      out.add("Allow", "GET");
      return response.sendError(405, "Method Not Allowed", out);
    }
    // The query string (a cache-buster, say) does not change what is shown.
    auto path = kj::heapString(url);
    KJ_IF_MAYBE(q, url.findFirst('?')) path = kj::heapString(url.slice(0, *q));
    if (path == "/metrics") {
      return send(response, "text/plain; version=0.0.4; charset=utf-8",
                  withReport([](const NodeReport& r) { return metricsText(r); }));
    }
    if (path == "/status.json") {
      return send(response, "application/json",
                  withReport([](const NodeReport& r) {
                    return statusJson(r).dump(-1, ' ', false,
                                              nlohmann::json::error_handler_t::replace);
                  }));
    }
    if (path == "/" || path == "/index.html") {
      return send(response, "text/html; charset=utf-8", statusPageHtml());
    }
    return response.sendError(404, "Not Found", headers_);
  }

 private:
  Service& service_;
  Membership& membership_;
  HashTrees& trees_;
  TransferManager* transfers_;
  Metrics& metrics_;
  kj::HttpHeaderTable& headers_;

  template <typename Render>
  std::string withReport(Render&& render) {
    // Fills the same messages Admin.nodeStats and Admin.status answer with, and renders them.
    capnp::MallocMessageBuilder statsMessage, statusMessage;
    auto stats = statsMessage.initRoot<wire::NodeStats>();
    service_.nodeStats(stats);
    auto status = statusMessage.initRoot<wire::Admin::StatusResults>();
    service_.status(status);
    auto map = membership_.current();
    NodeReport report;
    report.stats = stats.asReader();
    report.status = status.asReader();
    report.map = map.get();
    report.metrics = &metrics_;
    report.pendingTransfers = transfers_ != nullptr ? transfers_->pendingCount() : 0;
    for (auto p : trees_.partitions()) report.keys += trees_.keys(p);
    return render(report);
  }

  kj::Promise<void> send(Response& response, kj::StringPtr contentType, std::string body) {
    kj::HttpHeaders out(headers_);
    out.set(kj::HttpHeaderId::CONTENT_TYPE, contentType);
    out.add("Cache-Control", "no-store");
    auto text = kj::heapString(body.data(), body.size());
    auto stream = response.send(200, "OK", out, uint64_t(text.size()));
    auto write = stream->write(text.begin(), text.size());
    return write.attach(kj::mv(stream), kj::mv(text));
  }
};

HttpStatus::HttpStatus(kj::Timer& timer, Service& service, Membership& membership,
                       HashTrees& trees, TransferManager* transfers, Metrics& metrics,
                       HttpStatusOptions options)
    : metrics_(metrics),
      options_(options),
      routes_(kj::heap<Routes>(service, membership, trees, transfers, metrics, headers_)),
      server_(timer, headers_, *routes_, [&]() {
        kj::HttpServerSettings settings;
        settings.headerTimeout = options.headerTimeout;
        settings.pipelineTimeout = options.headerTimeout;
        return settings;
      }()),
      tasks_(*this) {}

HttpStatus::~HttpStatus() noexcept(false) {}

kj::Promise<void> HttpStatus::listen(kj::ConnectionReceiver& listener) {
  return listener.accept().then([this, &listener](kj::Own<kj::AsyncIoStream> stream) {
    if (open_ >= options_.maxConnections) {
      // Dropping the stream closes it: a client that opens connections without end cannot
      // take the node's descriptors or memory.
      metrics_.refused(Refusal::HTTP);
      return listen(listener);
    }
    open_++;
    tasks_.add(server_.listenHttp(kj::mv(stream)).attach(kj::defer([this]() { open_--; })));
    return listen(listener);
  });
}

void HttpStatus::taskFailed(kj::Exception&& exception) {
  if (exception.getType() == kj::Exception::Type::DISCONNECTED) return;
  KJ_LOG(INFO, "HTTP connection ended with an error", exception);
}

}  // namespace dynkv::storaged
