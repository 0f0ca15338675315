// Connection quality from getStats (rtc.md §5): round-trip time, packet loss and received bitrate, turned into
// good / fair / poor. Figures are rates over the last interval, so each sample compares with the previous one.

// Below these a video consultation works well / still works (a clinician must see the patient's skin and eyes).
const GOOD = { rttMs: 300, lossPct: 2, videoKbps: 250 };
const FAIR = { rttMs: 700, lossPct: 8, videoKbps: 80 };

export function classify(sample, { expectVideo = true } = {}) {
  const { rtt_ms: rtt, loss_pct: loss, video_in_kbps: video } = sample;
  const over = (limit) => (rtt != null && rtt > limit.rttMs) || (loss != null && loss > limit.lossPct)
    || (expectVideo && video != null && video < limit.videoKbps);
  if (rtt == null && loss == null && video == null) return "unknown";
  if (!over(GOOD)) return "good";
  if (!over(FAIR)) return "fair";
  return "poor";
}

export class QualityMeter {
  constructor() { this.previous = null; this.pc = null; }

  // One sample in the shape of the API's QualitySample, plus video_in_kbps for the verdict; null without stats.
  async sample(pc) {
    if (!pc || pc.connectionState !== "connected") return null;
    if (pc !== this.pc) { this.pc = pc; this.previous = null; }
    const report = await pc.getStats();
    const now = { at: performance.now(), inBytes: 0, outBytes: 0, videoInBytes: 0, lost: 0, received: 0 };
    let rtt = null; let jitter = null; let limitation = null; let remoteRtt = null;
    const selected = new Set();
    report.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) selected.add(s.selectedCandidatePairId); });
    report.forEach((s) => {
      if (s.type === "candidate-pair" && (selected.has(s.id) || (!selected.size && s.nominated && s.state === "succeeded"))) {
        if (s.currentRoundTripTime != null) rtt = s.currentRoundTripTime * 1000;
      } else if (s.type === "inbound-rtp") {
        now.inBytes += s.bytesReceived || 0;
        now.lost += Math.max(0, s.packetsLost || 0);
        now.received += s.packetsReceived || 0;
        if (s.kind === "video") now.videoInBytes += s.bytesReceived || 0;
        if (s.jitter != null) jitter = Math.max(jitter ?? 0, s.jitter * 1000);
      } else if (s.type === "outbound-rtp") {
        now.outBytes += s.bytesSent || 0;
        if (s.kind === "video" && s.qualityLimitationReason) limitation = s.qualityLimitationReason;
      } else if (s.type === "remote-inbound-rtp" && s.roundTripTime != null) {
        remoteRtt = s.roundTripTime * 1000;
      }
    });
    const before = this.previous;
    this.previous = now;
    const sample = { rtt_ms: rtt ?? remoteRtt, jitter_ms: jitter, loss_pct: null, out_kbps: null, in_kbps: null,
      video_in_kbps: null, quality_limitation: limitation };
    if (before) {
      const seconds = (now.at - before.at) / 1000;
      const kbps = (bytes) => Math.max(0, bytes) * 8 / 1000 / seconds;
      sample.in_kbps = kbps(now.inBytes - before.inBytes);
      sample.out_kbps = kbps(now.outBytes - before.outBytes);
      sample.video_in_kbps = kbps(now.videoInBytes - before.videoInBytes);
      const lost = now.lost - before.lost;
      const total = lost + now.received - before.received;
      sample.loss_pct = total > 0 ? Math.min(100, Math.max(0, (100 * lost) / total)) : 0;
    }
    return sample;
  }
}

// What POST /consultations/{id}/quality accepts: rounded figures, absent ones left out.
export function forApi(sample) {
  const body = {};
  for (const key of ["rtt_ms", "jitter_ms", "loss_pct", "out_kbps", "in_kbps"]) {
    if (sample[key] != null && Number.isFinite(sample[key])) body[key] = Math.round(sample[key] * 10) / 10;
  }
  if (["none", "cpu", "bandwidth", "other"].includes(sample.quality_limitation)) {
    body.quality_limitation = sample.quality_limitation;
  }
  return body;
}
