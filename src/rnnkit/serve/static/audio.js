// Audio for the speech view: a microphone recording turned into the 16-bit PCM WAV file that
// POST /v1/transcribe reads, at the model's sample rate (GET /v1/models says it; 16 kHz otherwise).
"use strict";

const RnnkitAudio = (() => {
  const RATE = 16000;

  // mono samples in [-1, 1] -> a canonical 44-byte-header PCM WAV
  function encodeWav(samples, rate = RATE) {
    const buffer = new ArrayBuffer(44 + samples.length * 2);
    const view = new DataView(buffer);
    const ascii = (at, text) => { for (let i = 0; i < text.length; i++) view.setUint8(at + i, text.charCodeAt(i)); };
    ascii(0, "RIFF");
    view.setUint32(4, 36 + samples.length * 2, true);
    ascii(8, "WAVE");
    ascii(12, "fmt ");
    view.setUint32(16, 16, true);  // size of the fmt chunk
    view.setUint16(20, 1, true);  // PCM
    view.setUint16(22, 1, true);  // mono
    view.setUint32(24, rate, true);
    view.setUint32(28, rate * 2, true);  // bytes per second
    view.setUint16(32, 2, true);  // bytes per frame
    view.setUint16(34, 16, true);  // bits per sample
    ascii(36, "data");
    view.setUint32(40, samples.length * 2, true);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      view.setInt16(44 + i * 2, Math.round(s < 0 ? s * 0x8000 : s * 0x7fff), true);
    }
    return new Blob([buffer], { type: "audio/wav" });
  }

  // a recording in whatever MediaRecorder made (webm/opus, ogg...) -> mono WAV at `rate` (the model's)
  async function toWav(blob, rate = RATE) {
    const context = new AudioContext();
    let decoded;
    try {
      decoded = await context.decodeAudioData(await blob.arrayBuffer());
    } finally {
      context.close();
    }
    const offline = new OfflineAudioContext(1, Math.max(1, Math.ceil(decoded.duration * rate)), rate);
    const source = offline.createBufferSource();
    source.buffer = decoded;  // several channels are mixed down to the one of the destination
    source.connect(offline.destination);
    source.start();
    const rendered = await offline.startRendering();
    return { wav: encodeWav(rendered.getChannelData(0), rate), seconds: rendered.duration };
  }

  // getUserMedia exists only in a secure context (https, or http on localhost / 127.0.0.1)
  function micAvailable() {
    return Boolean(window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia &&
      window.MediaRecorder && window.OfflineAudioContext);
  }

  // start(maxSeconds, rate) asks for the microphone (rejects when the browser or the user says no) and
  // records until stop() or maxSeconds; `done` then resolves to the WAV and its length in seconds.
  class Recorder {
    async start(maxSeconds, rate = RATE) {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const media = new MediaRecorder(this.stream);
      const chunks = [];
      this.media = media;
      this.done = new Promise((resolve, reject) => {
        media.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
        media.addEventListener("error", (e) => reject(e.error || new Error("the recording failed")));
        media.addEventListener("stop", () => {
          for (const track of this.stream.getTracks()) track.stop();
          if (!chunks.length) reject(new Error("the microphone gave no sound"));
          else toWav(new Blob(chunks, { type: media.mimeType }), rate).then(resolve, reject);
        });
      });
      media.start();
      this.timer = setTimeout(() => this.stop(), maxSeconds * 1000);
    }

    get recording() {
      return Boolean(this.media && this.media.state === "recording");
    }

    stop() {
      clearTimeout(this.timer);
      if (this.recording) this.media.stop();
    }
  }

  return { RATE, encodeWav, toWav, micAvailable, Recorder };
})();
