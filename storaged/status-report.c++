#include "status-report.h"

#include <map>

#include "protocol-version.h"

namespace dynkv::storaged {

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

MetricFamily family(std::string name, std::string help, MetricFamily::Type type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

MetricFamily single(std::string name, std::string help, MetricFamily::Type type, double value) {
  auto f = family(std::move(name), std::move(help), type);
  f.samples.push_back({{}, value});
  return f;
}

std::string text(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

}  // namespace

std::vector<MetricFamily> nodeFamilies(const NodeReport& report) {
  using Type = MetricFamily::Type;
  auto out = requestFamilies(*report.metrics);
  auto stats = report.stats;

  auto hints = family("dynkv_hints_held", "Hinted writes this node holds for an owner that was "
                      "unreachable (sloppy quorum), by owner", Type::GAUGE);
  for (auto h : stats.getHints()) {
    auto owner = h.getOwnerAddress().size() > 0 ? text(h.getOwnerAddress())
                                                : "id:" + std::to_string(h.getOwner());
    hints.samples.push_back({{{"owner", owner}}, double(h.getCount())});
  }
  // A node without hints still exports the family, so a dashboard can tell "none" from absent.
  if (hints.samples.empty()) hints.samples.push_back({{{"owner", ""}}, 0});
  out.push_back(std::move(hints));

  auto ae = stats.getAntiEntropy();
  out.push_back(single("dynkv_anti_entropy_exchanges_total", "Anti-entropy exchanges finished "
                       "with a replica", Type::COUNTER, double(ae.getExchangesFinished())));
  out.push_back(single("dynkv_anti_entropy_exchanges_failed_total", "Anti-entropy exchanges "
                       "that failed", Type::COUNTER, double(ae.getExchangesFailed())));
  out.push_back(single("dynkv_anti_entropy_segments_differing", "Tree segments that differed "
                       "in the last finished round", Type::GAUGE,
                       double(ae.getSegmentsDiffering())));
  out.push_back(single("dynkv_anti_entropy_keys_repaired_total", "Keys anti-entropy repaired",
                       Type::COUNTER, double(ae.getKeysRepaired())));
  auto bytes = family("dynkv_anti_entropy_bytes_total", "Bytes of anti-entropy requests and "
                      "replies, by direction", Type::COUNTER);
  bytes.samples.push_back({{{"direction", "sent"}}, double(ae.getBytesSent())});
  bytes.samples.push_back({{{"direction", "received"}}, double(ae.getBytesReceived())});
  out.push_back(std::move(bytes));
  // -1 (no exchange finished yet) stays -1: "never" must not read as "just now".
  auto age = ae.getLastCompleteAgeMillis();
  out.push_back(single("dynkv_anti_entropy_last_complete_age_seconds", "Since the last "
                       "anti-entropy exchange finished; -1: none yet", Type::GAUGE,
                       age < 0 ? -1.0 : double(age) / 1000.0));
  out.push_back(single("dynkv_anti_entropy_partitions_held", "Partitions this node holds "
                       "trees of", Type::GAUGE, double(ae.getPartitionsHeld())));
  out.push_back(single("dynkv_rebuilding", "1 while the node refills an empty data directory "
                       "from its replicas", Type::GAUGE, stats.getRebuilding() ? 1 : 0));
  out.push_back(single("dynkv_tombstones", "Objects held that are only tombstones", Type::GAUGE,
                       double(stats.getTombstones())));
  out.push_back(single("dynkv_tombstones_reaped_total", "Tombstones collected",
                       Type::COUNTER, double(stats.getTombstonesReaped())));
  out.push_back(single("dynkv_partitions_dropped_total", "Partitions handed over and deleted "
                       "here", Type::COUNTER, double(stats.getPartitionsDropped())));
  out.push_back(single("dynkv_transfers_pending", "Partitions still streaming in to this node",
                       Type::GAUGE, double(report.pendingTransfers)));
  out.push_back(single("dynkv_admission_slots", "Background slots admission control grants now",
                       Type::GAUGE, double(stats.getAdmissionSlots())));
  out.push_back(single("dynkv_engine_keys", "Objects the storage engine holds, tombstones "
                       "included", Type::GAUGE, double(report.keys)));
  out.push_back(single("dynkv_engine_bytes", "Bytes the stored data takes (LMDB: pages in use)",
                       Type::GAUGE, double(stats.getEngineBytes())));
  out.push_back(single("dynkv_open_connections", "RPC connections being served",
                       Type::GAUGE, double(report.metrics->rpcConnections.open)));
  out.push_back(single("dynkv_partition_map_version", "The partition map version this node "
                       "routes by", Type::GAUGE, double(report.status.getMapVersion())));

  std::map<std::string, uint64_t> byStatus = {{"joining", 0}, {"up", 0}, {"leaving", 0},
                                              {"removed", 0}};
  uint64_t suspected = 0;
  for (auto m : report.status.getMembers()) {
    switch (m.getMember().getStatus()) {
      case wire::MemberStatus::JOINING: byStatus["joining"]++; break;
      case wire::MemberStatus::UP: byStatus["up"]++; break;
      case wire::MemberStatus::LEAVING: byStatus["leaving"]++; break;
      case wire::MemberStatus::REMOVED: byStatus["removed"]++; break;
    }
    if (m.getSuspected()) suspected++;
  }
  auto members = family("dynkv_members", "Members in this node's view, by status", Type::GAUGE);
  for (auto& [status, n] : byStatus) members.samples.push_back({{{"status", status}}, double(n)});
  out.push_back(std::move(members));
  out.push_back(single("dynkv_members_suspected", "Members this node's failure detector "
                       "suspects", Type::GAUGE, double(suspected)));
  return out;
}

std::string metricsText(const NodeReport& report) {
  return formatPrometheus(nodeFamilies(report));
}

nlohmann::json statusJson(const NodeReport& report) {
  using json = nlohmann::json;
  auto statusName = [](wire::MemberStatus s) {
    switch (s) {
      case wire::MemberStatus::JOINING: return "joining";
      case wire::MemberStatus::UP: return "up";
      case wire::MemberStatus::LEAVING: return "leaving";
      case wire::MemberStatus::REMOVED: return "removed";
    }
    return "unknown";
  };
  json members = json::array();
  std::map<uint64_t, size_t> indexById;
  for (auto m : report.status.getMembers()) {
    auto member = m.getMember();
    auto info = member.getInfo();
    indexById[info.getId()] = members.size();
    // phi is infinite for a node never heard from: JSON has no infinity, so null.
    double phi = m.getPhi();
    members.push_back({{"id", std::to_string(info.getId())},
                       {"address", text(info.getAddress())},
                       {"http", text(member.getHttpAddress())},
                       {"zone", text(info.getZone())},
                       {"status", statusName(member.getStatus())},
                       {"partitions", m.getPartitions()},
                       {"phi", std::isfinite(phi) ? json(phi) : json(nullptr)},
                       {"suspected", m.getSuspected()},
                       {"map_version", member.getMapVersion()}});
  }
  json owners = json::array();
  if (report.map != nullptr) {
    auto& nodes = report.map->nodes();
    for (auto owner : report.map->owners()) {
      auto at = indexById.find(nodes[owner].id);
      owners.push_back(at == indexById.end() ? json(-1) : json(at->second));
    }
  }
  json latency = json::array();
  for (size_t i = 0; i < OPERATIONS; i++) {
    auto op = Operation(i);
    auto& h = report.metrics->latency(op);
    latency.push_back({{"op", opLabel(op)},
                       {"role", roleLabel(op)},
                       {"count", h.count()},
                       {"p50_ms", double(h.quantileMicros(0.5)) / 1000.0},
                       {"p99_ms", double(h.quantileMicros(0.99)) / 1000.0}});
  }
  auto stats = report.stats;
  auto ae = stats.getAntiEntropy();
  json hints = json::array();
  for (auto h : stats.getHints()) {
    hints.push_back({{"owner", std::to_string(h.getOwner())},
                     {"owner_address", text(h.getOwnerAddress())},
                     {"count", h.getCount()}});
  }
  return {{"node", text(stats.getNode().getAddress())},
          {"reporter", text(report.status.getReporter())},
          // The wire protocol it speaks and the oldest it accepts: a rolling upgrade's check.
          {"protocol", {{"version", PROTOCOL_VERSION}, {"oldest", OLDEST_PROTOCOL_VERSION}}},
          {"map_version", report.status.getMapVersion()},
          {"partition_count", report.map != nullptr ? report.map->partitionCount() : 0},
          {"members", members},
          {"owners", owners},
          {"latency", latency},
          {"anti_entropy",
           {{"exchanges_finished", ae.getExchangesFinished()},
            {"exchanges_failed", ae.getExchangesFailed()},
            {"segments_differing", ae.getSegmentsDiffering()},
            {"keys_repaired", ae.getKeysRepaired()},
            {"bytes_sent", ae.getBytesSent()},
            {"bytes_received", ae.getBytesReceived()},
            {"last_complete_age_ms", ae.getLastCompleteAgeMillis()},
            {"partitions_held", ae.getPartitionsHeld()},
            {"running", ae.getRunning()},
            {"rebuilding", stats.getRebuilding()}}},
          {"hints", hints},
          {"pending_transfers", report.pendingTransfers},
          {"keys", report.keys},
          {"engine_bytes", stats.getEngineBytes()},
          {"tombstones", stats.getTombstones()}};
}

const std::string& statusPageHtml() {
  // One page, no external resources: the node may be on a network without internet, and an
  // operator's browser should need nothing but this port. The script only reads /status.json
  // and writes text through textContent (never innerHTML), so no member field can inject markup.
  static const std::string page = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>dynkv node status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px}
.sub{color:#666;margin-bottom:12px}
.grid{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 16px}
table{border-collapse:collapse}td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #eee}
th{font-weight:600;color:#444}td.num{text-align:right;font-variant-numeric:tabular-nums}
.state-up{color:#1a7f37;font-weight:600}.state-joining{color:#9a6700;font-weight:600}
.state-leaving{color:#bc4c00;font-weight:600}.state-removed{color:#888}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;
vertical-align:middle}
#error{color:#b00}
</style></head>
<body>
<h1>dynkv node <span id="node">…</span></h1>
<div class="sub">partition map v<span id="map-version">…</span> ·
<span id="partition-count">…</span> partitions · <span id="member-count">…</span> members ·
updated <span id="updated">never</span> <span id="error"></span></div>
<div class="grid">
<div class="card"><h2>Members</h2>
<table id="members"><thead><tr><th></th><th>address</th><th>state</th><th>partitions</th>
<th>phi</th><th>map</th><th>http</th></tr></thead><tbody></tbody></table></div>
<div class="card"><h2>Ring</h2>
<svg id="ring" width="300" height="300" viewBox="-150 -150 300 300" role="img"
aria-label="partitions by owner"></svg>
<div class="sub">outer: each partition in its owner's colour (as in Members)<br>
inner: each owner's share of the ring</div></div>
</div>
<div class="grid">
<div class="card"><h2>Latency on this node</h2>
<table id="latency"><thead><tr><th>op</th><th>role</th><th>count</th><th>p50 ms</th>
<th>p99 ms</th></tr></thead><tbody></tbody></table></div>
<div class="card"><h2>Anti-entropy</h2><table id="anti-entropy"><tbody></tbody></table></div>
<div class="card"><h2>Hints held</h2>
<table id="hints"><thead><tr><th>owner</th><th>count</th></tr></thead><tbody></tbody></table>
<p>pending transfers: <span id="transfers">…</span> · keys: <span id="keys">…</span></p></div>
</div>
<script>
"use strict";
const COLORS=["#4e79a7","#f28e2b","#e15759","#76b7b2","#59a14f","#edc948","#b07aa1",
"#ff9da7","#9c755f","#bab0ac"];
const color=i=>i<0?"#ccc":COLORS[i%COLORS.length];
const $=id=>document.getElementById(id);
function cell(row,text,cls){const td=document.createElement("td");td.textContent=text;
if(cls)td.className=cls;row.appendChild(td);return td;}
function rows(table,items,fill){const body=$(table).tBodies[0];body.replaceChildren();
for(const it of items){const tr=document.createElement("tr");fill(tr,it);body.appendChild(tr);}}
function ring(owners){const svg=$("ring"),NS="http://www.w3.org/2000/svg";svg.replaceChildren();
const n=owners.length;if(!n)return;
const pt=(rad,a)=>(rad*Math.cos(a)).toFixed(2)+" "+(rad*Math.sin(a)).toFixed(2);
const arc=(R,r,f0,f1,fill,cls,owner)=>{const a0=2*Math.PI*f0-Math.PI/2,
a1=2*Math.PI*f1-Math.PI/2,big=f1-f0>0.5?1:0,path=document.createElementNS(NS,"path");
path.setAttribute("d","M"+pt(r,a0)+"L"+pt(R,a0)+"A"+R+" "+R+" 0 "+big+" 1 "+pt(R,a1)+
"L"+pt(r,a1)+"A"+r+" "+r+" 0 "+big+" 0 "+pt(r,a0)+"Z");path.setAttribute("fill",fill);
path.setAttribute("shape-rendering","crispEdges");path.setAttribute("class",cls);
path.setAttribute("data-owner",String(owner));svg.appendChild(path);};
for(let p=0;p<n;p++)arc(140,100,p/n,(p+1)/n,color(owners[p]),"partition",owners[p]);
const share=new Map();for(const o of owners)share.set(o,(share.get(o)||0)+1);let at=0;
for(const [o,c] of [...share].sort((x,y)=>x[0]-y[0])){
arc(92,72,at/n,(at+c)/n,color(o),"share",o);at+=c;}
const t=document.createElementNS(NS,"text");t.setAttribute("text-anchor","middle");
t.setAttribute("dy","5");t.textContent=n+" partitions";svg.appendChild(t);}
function show(s){
$("node").textContent=s.node;$("map-version").textContent=s.map_version;
$("partition-count").textContent=s.partition_count;$("member-count").textContent=s.members.length;
rows("members",s.members.map((m,i)=>[m,i]),(tr,[m,i])=>{tr.className="member";
tr.dataset.address=m.address;const sw=cell(tr,"");const b=document.createElement("span");
b.className="sw";b.style.background=color(i);sw.appendChild(b);
cell(tr,m.address,"address");cell(tr,m.status+(m.suspected?" (suspected)":""),
"state state-"+m.status);cell(tr,m.partitions,"num partitions");
cell(tr,m.phi===null?"∞":m.phi.toFixed(2),"num");cell(tr,"v"+m.map_version,"num");
const h=cell(tr,"","http");if(m.http){const a=document.createElement("a");
a.href="http://"+m.http+"/";a.textContent=m.http;h.appendChild(a);}});
ring(s.owners);
rows("latency",s.latency,(tr,l)=>{cell(tr,l.op);cell(tr,l.role);cell(tr,l.count,"num");
cell(tr,l.count?l.p50_ms.toFixed(2):"–","num");
cell(tr,l.count?l.p99_ms.toFixed(2):"–","num");});
const ae=s.anti_entropy,age=ae.last_complete_age_ms;
rows("anti-entropy",[["last exchange",age<0?"none yet":(age/1000).toFixed(1)+" s ago"],
["exchanges finished",ae.exchanges_finished],["exchanges failed",ae.exchanges_failed],
["segments differing",ae.segments_differing],["keys repaired",ae.keys_repaired],
["bytes sent / received",ae.bytes_sent+" / "+ae.bytes_received],
["partitions held",ae.partitions_held],["running",ae.running?"yes":"no"],
["rebuilding",ae.rebuilding?"yes":"no"]],(tr,[k,v])=>{cell(tr,k);cell(tr,v,"num");});
rows("hints",s.hints.length?s.hints:[{owner_address:"none",count:0}],(tr,h)=>{
cell(tr,h.owner_address||("id "+h.owner));cell(tr,h.count,"num");});
$("transfers").textContent=s.pending_transfers;$("keys").textContent=s.keys;
$("updated").textContent=new Date().toLocaleTimeString();$("error").textContent="";}
function poll(){fetch("/status.json",{cache:"no-store"}).then(r=>{
if(!r.ok)throw new Error("HTTP "+r.status);return r.json();}).then(show)
.catch(e=>{$("error").textContent="("+e.message+")";}).finally(()=>setTimeout(poll,2000));}
poll();
</script>
</body></html>
)HTML";
  return page;
}

}  // namespace dynkv::storaged
