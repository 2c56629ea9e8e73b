//! Audio calls (`/audio/transcriptions`, `/audio/translations`, `/audio/speech`): the seconds of
//! audio a transcription is priced by, and the content type of transcripts that are not JSON.
//!
//! The seconds come from the provider's `verbose_json` answer (`duration`) when it has one, else
//! from the uploaded file's header: WAV (the `fmt ` chunk's byte rate and the `data` chunk's
//! size) and MP3 (the Xing/Info frame count, else the first frame's bit rate over the file's
//! size). Other formats count 0 seconds, and say so in the log.

use serde_json::Value;

use crate::llm::LlmRequest;

/// The content type of a transcript in `text`, `srt` or `vtt` (OpenAI answers all three as plain
/// text).
pub fn text_content_type(_format: &str) -> &'static str {
    "text/plain; charset=utf-8"
}

/// The seconds of audio a transcription or translation is priced by: the answer's `duration`,
/// else the length of the uploaded file, else 0 (logged).
pub fn billed_seconds(req: &LlmRequest, answer: &[u8]) -> f64 {
    #[derive(serde::Deserialize)]
    struct Probe {
        duration: Option<Value>,
    }
    let answered = serde_json::from_slice::<Probe>(answer)
        .ok()
        .and_then(|p| p.duration)
        .and_then(|d| {
            d.as_f64()
                .or_else(|| d.as_str().and_then(|s| s.parse().ok()))
        })
        .filter(|d| d.is_finite() && *d >= 0.0);
    if let Some(seconds) = answered {
        return seconds;
    }
    let file = req.uploads.iter().find(|u| u.field == "file");
    match file.and_then(|f| file_seconds(&f.data)) {
        Some(seconds) => seconds,
        None => {
            tracing::info!(
                model = req.model,
                filename = file.and_then(|f| f.filename.as_deref()),
                "the audio's length is unknown (no duration in the answer, not a WAV or MP3 file): priced as 0 seconds"
            );
            0.0
        }
    }
}

/// The length in seconds of a WAV or MP3 file, from its header.
pub fn file_seconds(data: &[u8]) -> Option<f64> {
    wav_seconds(data).or_else(|| mp3_seconds(data))
}

fn le_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// RIFF/WAVE: the `data` chunk's size over the `fmt ` chunk's byte rate. A `data` chunk whose
/// size is unset (streamed WAV) counts the bytes present.
fn wav_seconds(data: &[u8]) -> Option<f64> {
    if data.get(0..4)? != b"RIFF" || data.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut byte_rate = None;
    while at + 8 <= data.len() {
        let id = &data[at..at + 4];
        let size = le_u32(data, at + 4)? as usize;
        let body = at + 8;
        if id == b"fmt " {
            byte_rate = le_u32(data, body + 8).filter(|r| *r > 0);
        } else if id == b"data" {
            let present = data.len() - body;
            let len = if size == 0 || size == u32::MAX as usize {
                present
            } else {
                size.min(present)
            };
            return Some(len as f64 / f64::from(byte_rate?));
        }
        at = body.checked_add(size)?.checked_add(size & 1)?;
    }
    None
}

/// MPEG audio layer III: skip an ID3v2 tag, read the first frame header; the frame count of a
/// Xing/Info header when there is one, else the file's size at the first frame's bit rate.
fn mp3_seconds(data: &[u8]) -> Option<f64> {
    let mut at = 0;
    if data.get(0..3)? == b"ID3" {
        let size = data
            .get(6..10)?
            .iter()
            .fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7f));
        let footer = if data.get(5)? & 0x10 != 0 { 10 } else { 0 };
        at = 10 + size + footer;
    }
    let header = data.get(at..at + 4)?;
    if header[0] != 0xff || header[1] & 0xe0 != 0xe0 {
        return None;
    }
    let version = (header[1] >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    let layer = (header[1] >> 1) & 3; // 1: layer III
    if version == 1 || layer != 1 {
        return None;
    }
    let bitrate_index = usize::from(header[2] >> 4);
    let rate_index = usize::from((header[2] >> 2) & 3);
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    const MPEG1_KBPS: [u32; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const MPEG2_KBPS: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let (kbps, sample_rate, samples_per_frame) = match version {
        3 => (
            MPEG1_KBPS[bitrate_index],
            [44_100, 48_000, 32_000][rate_index],
            1152,
        ),
        2 => (
            MPEG2_KBPS[bitrate_index],
            [22_050, 24_000, 16_000][rate_index],
            576,
        ),
        _ => (
            MPEG2_KBPS[bitrate_index],
            [11_025, 12_000, 8_000][rate_index],
            576,
        ),
    };
    let mono = header[3] >> 6 == 3;
    let side_info = match (version == 3, mono) {
        (true, false) => 32,
        (true, true) => 17,
        (false, false) => 17,
        (false, true) => 9,
    };
    let xing = at + 4 + side_info;
    if matches!(data.get(xing..xing + 4), Some(b"Xing" | b"Info"))
        && be_u32(data, xing + 4)? & 1 == 1
    {
        let frames = be_u32(data, xing + 8)?;
        return Some(f64::from(frames) * f64::from(samples_per_frame) / f64::from(sample_rate));
    }
    Some((data.len() - at) as f64 * 8.0 / (f64::from(kbps) * 1000.0))
}

/// A silent PCM WAV of `seconds` at 16 kHz, 16-bit mono (the health probe's audio).
pub fn silence_wav(seconds: f64) -> Vec<u8> {
    let rate = 16_000u32;
    let samples = (seconds * f64::from(rate)) as u32;
    let data_len = samples * 2;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.resize(out.len() + data_len as usize, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_length_from_its_header() {
        let s = file_seconds(&silence_wav(2.5)).expect("wav");
        assert!((s - 2.5).abs() < 1e-9, "{s}");
        assert_eq!(file_seconds(b"RIFF\0\0\0\0WAVE"), None);
    }

    #[test]
    fn mp3_length_from_bit_rate_or_xing_frames() {
        // MPEG-1 layer III, 128 kbps, 44.1 kHz, stereo: 16,000 bytes a second.
        let mut cbr = vec![0xff, 0xfb, 0x90, 0x00];
        cbr.resize(32_000, 0);
        let s = file_seconds(&cbr).expect("mp3");
        assert!((s - 2.0).abs() < 1e-9, "{s}");
        // With an ID3 tag in front and a Xing header counting 100 frames.
        let mut tagged = b"ID3\x04\x00\x00\x00\x00\x00\x0a".to_vec();
        tagged.extend_from_slice(&[0; 10]);
        tagged.extend_from_slice(&[0xff, 0xfb, 0x90, 0x00]);
        tagged.extend_from_slice(&[0; 32]);
        tagged.extend_from_slice(b"Xing");
        tagged.extend_from_slice(&1u32.to_be_bytes());
        tagged.extend_from_slice(&100u32.to_be_bytes());
        tagged.resize(4_000, 0);
        let s = file_seconds(&tagged).expect("mp3");
        assert!((s - 100.0 * 1152.0 / 44_100.0).abs() < 1e-9, "{s}");
        assert_eq!(file_seconds(b"not audio at all"), None);
    }
}
