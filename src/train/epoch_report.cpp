#include "recvae/train/epoch_report.h"

#include <algorithm>
#include <cstdio>

#include "recvae/train/run_log.h"
#include "recvae/util/json.h"

namespace recvae {

JsonObject metrics_json(const MetricSums& m) {
  JsonObject o;
  o.add("ndcg@100", m.mean_ndcg100()).add("recall@20", m.mean_recall20()).add("recall@50", m.mean_recall50());
  o.add("users", m.users);
  return o;
}

void accumulate(StepBreakdown& total, const StepBreakdown& more) {
  total.compute += more.compute;
  total.comm += more.comm;
  total.optimizer += more.optimizer;
  total.other += more.other;
  total.tally += more.tally;
}

void add_breakdown(JsonObject& o, const StepBreakdown& b, double steps) {
  const double n = std::max(steps, 1.0);
  o.add("compute_seconds", b.compute / n)
      .add("comm_seconds", b.comm / n)
      .add("optimizer_seconds", b.optimizer / n)
      .add("other_seconds", b.other / n)
      .add("comm_payload_bytes", static_cast<double>(b.tally.payload_bytes) / n)
      .add("comm_wire_bytes_per_rank", static_cast<double>(b.tally.wire_bytes) / n)
      .add("collectives", static_cast<double>(b.tally.collectives) / n)
      .add("collectives_during_backward", static_cast<double>(b.tally.overlapped) / n);
}

void EpochReport::pass(int epoch, const std::string& phase, const PassStats& st) const {
  if (!root_) return;
  std::string figures;
  for (const auto& [key, value] : st.figures) figures += ", " + key + " " + std::to_string(value);
  std::fprintf(stderr, "epoch %d/%d %s pass: loss %.4f (mll %.3f, kl %.3f), %lld steps, %.2f s, %.0f users/s%s\n",
               epoch + 1, epochs_, phase.c_str(), st.loss, st.mll, st.kl, static_cast<long long>(st.steps), st.seconds,
               st.users / std::max(st.seconds, 1e-9), figures.c_str());
}

void EpochReport::epoch(const EpochFigures& e) {
  JsonObject rec;
  rec.add("epoch", e.epoch);
  for (const auto& [name, ph] : e.phases) {
    JsonObject o;
    o.add("loss", ph.sum.loss / ph.passes).add("mll", ph.sum.mll / ph.passes).add("kl", ph.sum.kl / ph.passes);
    o.add("seconds", ph.sum.seconds).add("steps", ph.sum.steps);
    add_breakdown(o, ph.sum.time);
    o.add("optimizer_state_bytes", ph.sum.optimizer_state_bytes);
    for (const auto& [key, value] : ph.sum.figures) o.add(key, value);
    rec.add(name, o);
  }
  rec.add("validation", metrics_json(e.validation));
  if (!e.model.empty()) {
    JsonObject o;
    for (const auto& [key, value] : e.model) o.add(key, value);
    rec.add("model", o);
  }
  if (e.hook_seconds > 0) rec.add("epoch_start_seconds", e.hook_seconds);
  rec.add("train_seconds", e.train_seconds).add("eval_seconds", e.eval_seconds);
  rec.add("train_users_per_second", e.train_users / std::max(e.train_seconds, 1e-9));
  rec.add("allreduce_bytes_per_step", e.allreduce_bytes_per_step);
  rec.add("world_size", world_size_);
  log_.append_epoch(rec);
  if (!root_) return;
  std::string extra;
  for (const auto& [key, value] : e.model) extra += ", " + key + " " + std::to_string(value);
  if (e.hook_seconds > 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, ", epoch start %.1f s", e.hook_seconds);
    extra += buf;
  }
  std::fprintf(stderr,
               "epoch %d/%d: validation ndcg@100 %.4f recall@20 %.4f recall@50 %.4f%s (train %.1f s, eval %.1f s%s)\n",
               e.epoch, epochs_, e.validation.mean_ndcg100(), e.validation.mean_recall20(),
               e.validation.mean_recall50(), e.best ? " *best*" : "", e.train_seconds, e.eval_seconds, extra.c_str());
}

void EpochReport::fit(const FitFigures& f) {
  JsonObject rec;
  rec.add("epoch", f.candidate).add("fit", f.name).add("validation", metrics_json(f.validation));
  rec.add("fit_seconds", f.fit_seconds).add("eval_seconds", f.eval_seconds);
  rec.add("peak_host_memory_gb_sum_over_ranks", f.peak_memory_gb).add("world_size", world_size_);
  log_.append_epoch(rec);
  if (root_)
    std::fprintf(stderr,
                 "fit %d/%d %s: validation ndcg@100 %.4f recall@20 %.4f recall@50 %.4f%s (fit %.1f s, peak host memory "
                 "%.2f GB over all ranks)\n",
                 f.candidate, f.candidates, f.name.c_str(), f.validation.mean_ndcg100(), f.validation.mean_recall20(),
                 f.validation.mean_recall50(), f.best ? " *best*" : "", f.fit_seconds, f.peak_memory_gb);
}

}  // namespace recvae
