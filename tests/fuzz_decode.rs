//! Hostile bytes through `vision::decode` and the strip/cut JPEG decoder (issue 15), on the
//! stable toolchain: seeded mutations of real photos and of crafted files (huge sizes, RST/COM
//! tricks, restart intervals, progressive, arithmetic, lossless, 12-bit, CMYK, bad Huffman
//! tables, trailing bytes), 100,000 and more. Every input must give an image within the pixel
//! limit or a 4xx error, never a panic, and allocate no more than that limit allows; a cut
//! decode must equal a whole decode whenever both succeed.
//!
//! An input that breaks a rule is written to `target/fuzz-failures/`; keep it in
//! `tests/regressions/`, whose every file is replayed first.

mod common;
mod hostile;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use facewatch::error::Error;
use facewatch::vision::decode::{DEFAULT_MAX_PIXELS, decode};
use facewatch::vision::jpeg;
use turbojpeg_sys as tj;

/// Counts the Rust heap: the largest single allocation and the peak of live bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    LARGEST.fetch_max(size, Relaxed);
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call goes to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The tests of this file run one at a time, so that the counters describe one decode.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Heap use of `f`: its result, the largest single allocation and the peak of live bytes
/// above the start.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    LARGEST.store(0, Relaxed);
    let start = LIVE.load(Relaxed);
    PEAK.store(start, Relaxed);
    let out = f();
    (out, LARGEST.load(Relaxed), PEAK.load(Relaxed).saturating_sub(start))
}

/// What one decode may allocate on the Rust heap, for an input of `len` bytes under a limit
/// of `max_pixels`: the largest buffer is a decoded image (at most 8 bytes a pixel, 16-bit
/// RGBA PNG) or a copy of the input; at the peak an image and its converted copy are live.
fn largest_allowed(max_pixels: u64, len: usize) -> usize {
    (8 * max_pixels as usize).max(4 * len) + (1 << 20)
}

fn peak_allowed(max_pixels: u64, len: usize) -> usize {
    20 * max_pixels as usize + 8 * len + (4 << 20)
}

/// xorshift64*: small, seeded, and enough to spread mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// A JPEG from libjpeg-turbo's own encoder with the given parameters; `twelve`: 12-bit samples.
fn tj_jpeg(w: usize, h: usize, pixel_format: tj::TJPF, params: &[(tj::TJPARAM, c_int)], twelve: bool) -> Vec<u8> {
    let channels = match pixel_format {
        tj::TJPF_TJPF_GRAY => 1,
        tj::TJPF_TJPF_CMYK => 4,
        _ => 3,
    };
    let samples: Vec<u16> = (0..w * h * channels).map(|i| ((i * 37 + i / (w * channels) * 11) % 256) as u16).collect();
    // SAFETY: plain libjpeg-turbo calls on a handle of our own; the source buffers hold
    // w x h x channels samples, as the calls are told; the output is copied and freed.
    unsafe {
        let handle = tj::tj3Init(tj::TJINIT_TJINIT_COMPRESS as c_int);
        assert!(!handle.is_null());
        tj::tj3Set(handle, tj::TJPARAM_TJPARAM_QUALITY as c_int, 85);
        for &(p, v) in params {
            assert_eq!(tj::tj3Set(handle, p as c_int, v), 0, "parameter {p} = {v}");
        }
        let (mut buf, mut size): (*mut u8, tj::size_t) = (std::ptr::null_mut(), 0);
        let (w, h, pf) = (w as c_int, h as c_int, pixel_format as c_int);
        let rc = if twelve {
            let s: Vec<i16> = samples.iter().map(|&v| (v * 16) as i16).collect();
            tj::tj3Compress12(handle, s.as_ptr(), w, 0, h, pf, &mut buf, &mut size)
        } else {
            let s: Vec<u8> = samples.iter().map(|&v| v as u8).collect();
            tj::tj3Compress8(handle, s.as_ptr(), w, 0, h, pf, &mut buf, &mut size)
        };
        assert_eq!(rc, 0, "{}", std::ffi::CStr::from_ptr(tj::tj3GetErrorStr(handle)).to_string_lossy());
        let out = std::slice::from_raw_parts(buf, size as usize).to_vec();
        tj::tj3Free(buf.cast());
        tj::tj3Destroy(handle);
        out
    }
}

/// The crafted seeds: every kind of JPEG libjpeg-turbo writes, small, plus the hostile headers.
fn crafted_seeds() -> Vec<(String, Vec<u8>)> {
    use tj::*;
    let (rgb, gray, cmyk) = (TJPF_TJPF_RGB, TJPF_TJPF_GRAY, TJPF_TJPF_CMYK);
    let sub = |s: TJSAMP| (TJPARAM_TJPARAM_SUBSAMP, s as c_int);
    let on = |p: TJPARAM| (p, 1);
    let mut v: Vec<(String, Vec<u8>)> = vec![
        ("444".into(), tj_jpeg(24, 16, rgb, &[sub(TJSAMP_TJSAMP_444)], false)),
        ("420".into(), tj_jpeg(33, 31, rgb, &[sub(TJSAMP_TJSAMP_420)], false)),
        ("411 optimized".into(), tj_jpeg(40, 17, rgb, &[sub(TJSAMP_TJSAMP_411), on(TJPARAM_TJPARAM_OPTIMIZE)], false)),
        ("440".into(), tj_jpeg(16, 40, rgb, &[sub(TJSAMP_TJSAMP_440)], false)),
        ("grey".into(), tj_jpeg(32, 24, gray, &[sub(TJSAMP_TJSAMP_GRAY)], false)),
        ("progressive".into(), tj_jpeg(48, 32, rgb, &[sub(TJSAMP_TJSAMP_420), on(TJPARAM_TJPARAM_PROGRESSIVE)], false)),
        (
            "restart every row".into(),
            tj_jpeg(64, 48, rgb, &[sub(TJSAMP_TJSAMP_420), (TJPARAM_TJPARAM_RESTARTROWS, 1)], false),
        ),
        (
            "restart every 2 blocks".into(),
            tj_jpeg(40, 24, rgb, &[sub(TJSAMP_TJSAMP_422), (TJPARAM_TJPARAM_RESTARTBLOCKS, 2)], false),
        ),
        ("arithmetic".into(), tj_jpeg(32, 32, rgb, &[sub(TJSAMP_TJSAMP_420), on(TJPARAM_TJPARAM_ARITHMETIC)], false)),
        ("lossless".into(), tj_jpeg(20, 20, rgb, &[sub(TJSAMP_TJSAMP_444), on(TJPARAM_TJPARAM_LOSSLESS)], false)),
        ("12-bit".into(), tj_jpeg(24, 24, rgb, &[sub(TJSAMP_TJSAMP_420), (TJPARAM_TJPARAM_PRECISION, 12)], true)),
        ("cmyk".into(), tj_jpeg(24, 24, cmyk, &[sub(TJSAMP_TJSAMP_444)], false)),
        (
            "ycck".into(),
            tj_jpeg(
                24,
                24,
                cmyk,
                &[sub(TJSAMP_TJSAMP_420), (TJPARAM_TJPARAM_COLORSPACE, TJCS_TJCS_YCCK as c_int)],
                false,
            ),
        ),
        ("image crate 16x16".into(), hostile::small_jpeg(16, 16)),
        ("rst before sof 60000".into(), hostile::rst_before_sof(60_000, 60_000)),
        ("rst before sof 3000".into(), hostile::rst_before_sof(3_000, 3_000)),
        ("rst before sof 16".into(), hostile::rst_before_sof(16, 16)),
        ("claims 65535x65535".into(), hostile::jpeg_claiming(65_535, 65_535)),
        ("claims 0x16".into(), hostile::jpeg_claiming(0, 16)),
        ("png rgb".into(), hostile::png(20, 12, image::ExtendedColorType::Rgb8)),
        ("png rgba".into(), hostile::png(9, 9, image::ExtendedColorType::Rgba8)),
        ("png grey".into(), hostile::png(17, 5, image::ExtendedColorType::L8)),
        ("png rgb16".into(), hostile::png(8, 8, image::ExtendedColorType::Rgb16)),
        ("png claims 2^31".into(), hostile::png_claiming(1 << 31, 1 << 31)),
        ("png claims 60000".into(), hostile::png_claiming(60_000, 60_000)),
    ];
    // A bad Huffman table: the 16 code counts of the first DHT overfilled.
    let mut bad = hostile::small_jpeg(16, 16);
    let dht = bad.windows(2).position(|w| w == [0xFF, 0xC4]).unwrap();
    bad[dht + 5..dht + 21].fill(0x20);
    v.push(("bad huffman counts".into(), bad));
    // Trailing bytes after EOI, and a restart interval on a baseline file without markers.
    let mut trailing = hostile::small_jpeg(32, 32);
    trailing.extend_from_slice(&[0xFF, 0xD9, 0x00, 0xFF, 0xD8, 0x13, 0x37]);
    v.push(("trailing bytes".into(), trailing));
    let plain = hostile::small_jpeg(32, 32);
    let sos = plain.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let mut dri = plain[..sos].to_vec();
    dri.extend_from_slice(&[0xFF, 0xDD, 0x00, 0x04, 0x00, 0x01]);
    dri.extend_from_slice(&plain[sos..]);
    v.push(("restart interval without markers".into(), dri));
    v
}

/// Real photos: small LFW faces and the smaller non-face photos.
fn photo_seeds() -> Vec<(String, Vec<u8>)> {
    let faces = common::data().join("faces");
    let mut paths: Vec<PathBuf> = ["George_W_Bush", "Colin_Powell", "Serena_Williams"]
        .iter()
        .map(|n| faces.join(n).join("0001.jpg"))
        .chain(["horse.jpg", "color.jpg", "text.jpg"].iter().map(|n| common::data().join("nonface").join(n)))
        .collect();
    paths.retain(|p| p.exists());
    assert!(paths.len() >= 4, "test photos missing");
    paths.iter().map(|p| (p.display().to_string(), std::fs::read(p).unwrap())).collect()
}

/// Values a mutation likes to write: marker bytes and extreme lengths and sizes.
const INTERESTING: [u8; 12] = [0x00, 0xFF, 0xD0, 0xD7, 0xD8, 0xD9, 0xDA, 0xDD, 0xFE, 0xC0, 0xC2, 0x7F];

/// One to four mutations, most of them in the first `header` bytes (where the markers are).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let header = b.len().min(700);
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(0xFF);
        }
        let at = if rng.below(4) > 0 { rng.below(header.min(b.len())) } else { rng.below(b.len()) };
        match rng.below(11) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.byte(),
            2 => b[at] = INTERESTING[rng.below(INTERESTING.len())],
            3 => {
                // A 16-bit field (length, width, height, interval) set to an extreme value.
                let v: u16 = [0, 1, 2, 0x7FFF, 0xFFFF, 60_000, 0xFFFE][rng.below(7)];
                for (k, byte) in v.to_be_bytes().into_iter().enumerate() {
                    if let Some(x) = b.get_mut(at + k) {
                        *x = byte;
                    }
                }
            }
            4 => b.truncate(at.max(1)),
            5 => {
                let n = rng.below(16).min(b.len() - at);
                b.drain(at..at + n);
            }
            6 => {
                let bytes: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.byte()).collect();
                b.splice(at..at, bytes);
            }
            7 => {
                // A marker without a length, or a restart interval / comment segment, inserted.
                let marker: &[u8] = match rng.below(4) {
                    0 => &[0xFF, 0xD0 + (rng.below(8) as u8)],
                    1 => &[0xFF, 0xDD, 0x00, 0x04, 0x00, 0x01],
                    2 => &[0xFF, 0xFE, 0x00, 0x02],
                    _ => &[0xFF, 0xFE, 0xFF, 0xFE],
                };
                b.splice(at..at, marker.iter().copied());
            }
            8 => {
                // A range duplicated (a repeated segment or scan).
                let n = rng.below(64).min(b.len() - at);
                let chunk = b[at..at + n].to_vec();
                let to = rng.below(b.len());
                b.splice(to..to, chunk);
            }
            9 => {
                // The tail of another seed spliced in.
                let from = rng.below(other.len());
                b.truncate(at.max(2));
                b.extend_from_slice(&other[from..]);
            }
            _ => b.extend((0..1 + rng.below(32)).map(|_| rng.byte())),
        }
    }
    if b.starts_with(&[0x89, b'P', b'N', b'G']) && rng.below(2) == 0 {
        // Half the PNG mutations keep a valid IHDR checksum, so they reach the decoder.
        hostile::fix_png_crc(&mut b, 8);
    }
    b
}

/// Where a failing input is kept for `tests/regressions/`.
fn keep(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = common::root().join("target/fuzz-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Decodes `bytes` under `max_pixels` and checks every rule; `Err` says which one broke.
fn check(bytes: &[u8], max_pixels: u64) -> Result<bool, String> {
    let (res, largest, peak) = measured(|| catch_unwind(AssertUnwindSafe(|| decode(bytes, max_pixels))));
    let res = res.map_err(|_| "panicked".to_string())?;
    if largest > largest_allowed(max_pixels, bytes.len()) || peak > peak_allowed(max_pixels, bytes.len()) {
        return Err(format!("allocated {largest} bytes at once, {peak} at the peak, under {max_pixels} pixels"));
    }
    match res {
        Ok(img) if u64::from(img.width()) * u64::from(img.height()) <= max_pixels => Ok(true),
        Ok(img) => Err(format!("{}x{} decoded over the limit", img.width(), img.height())),
        Err(e) if (400..500).contains(&facewatch::api::status(&e).0) => Ok(false),
        Err(e) => Err(format!("status {} for bad input: {e}", facewatch::api::status(&e).0)),
    }
}

/// The strip and cut decoders against one whole decode of the same (mutated) bytes: equal
/// pixels whenever both succeed. `Ok(Some(why))`: one succeeded where the other failed.
fn check_cut(bytes: &[u8], max_pixels: u64, row: usize) -> Result<Option<String>, String> {
    let run = || {
        let whole = jpeg::decode(bytes, 1, max_pixels);
        let strips = jpeg::decode(bytes, 2, max_pixels);
        let cut = jpeg::decode_cut_at(bytes, row, max_pixels);
        (whole, strips, cut)
    };
    let (res, largest, _) = measured(|| catch_unwind(AssertUnwindSafe(run)));
    let (whole, strips, cut) = res.map_err(|_| "panicked".to_string())?;
    if largest > largest_allowed(max_pixels, bytes.len()) {
        return Err(format!("allocated {largest} bytes at once under {max_pixels} pixels"));
    }
    for e in [whole.as_ref().err(), strips.as_ref().err(), cut.as_ref().err()].into_iter().flatten() {
        if !(400..500).contains(&facewatch::api::status(&e).0) {
            return Err(format!("status {} for bad input: {e}", facewatch::api::status(&e).0));
        }
    }
    if let (Ok(a), Ok(b)) = (&whole, &strips)
        && a.as_raw() != b.as_raw()
    {
        return Err("strips differ from the whole decode".into());
    }
    if let (Ok(a), Ok(Some(b))) = (&whole, &cut)
        && a.as_raw() != b.as_raw()
    {
        return Err(format!("cut at MCU row {row} differs from the whole decode"));
    }
    Ok(match (&whole, &strips) {
        (Ok(_), Err(e)) => Some(format!("whole decodes, strips fail: {e}")),
        (Err(e), Ok(_)) => Some(format!("strips decode, whole fails: {e}")),
        _ => None,
    })
}

/// Every kept regression input must pass every rule.
fn replay_regressions() -> usize {
    let dir = common::root().join("tests/regressions");
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut n = 0;
    for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_file() && !p.ends_with("README.md")) {
        let bytes = std::fs::read(&path).unwrap();
        for max_pixels in [1 << 20, DEFAULT_MAX_PIXELS] {
            if let Err(why) = check(&bytes, max_pixels) {
                panic!("regression {}: {why}", path.display());
            }
        }
        n += 1;
    }
    n
}

/// Small inputs through `decode` under 1 MP (a bypass would show as far more allocated).
const SMALL_INPUTS: usize = 100_000;
const SMALL_LIMIT: u64 = 1 << 20;

/// Larger photos through the strip and cut decoders under 4 MP.
const CUT_INPUTS: usize = 1_500;
const CUT_LIMIT: u64 = 4 << 20;

#[test]
fn hostile_inputs_never_panic_overallocate_or_answer_5xx() {
    let _serial = serial();
    let replayed = replay_regressions();
    let mut seeds = crafted_seeds();
    seeds.extend(photo_seeds());
    let mut rng = Rng(0x5EED_F00D_CAFE_0015);
    let start = Instant::now();
    let (mut decoded, mut refused) = (0usize, 0usize);
    // The seeds themselves first, under both limits.
    for (name, bytes) in &seeds {
        for max_pixels in [SMALL_LIMIT, DEFAULT_MAX_PIXELS] {
            if let Err(why) = check(bytes, max_pixels) {
                panic!("seed {name}: {why}");
            }
        }
    }
    for i in 0..SMALL_INPUTS {
        let (name, seed) = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())].1;
        let bytes = mutate(&mut rng, seed, other);
        match check(&bytes, SMALL_LIMIT) {
            Ok(true) => decoded += 1,
            Ok(false) => refused += 1,
            Err(why) => {
                panic!("input {i} (from {name}): {why}; kept as {}", keep(&format!("small-{i}.bin"), &bytes).display())
            }
        }
    }
    let small = start.elapsed();

    // Photos the cut applies to, mutated mostly in their entropy-coded data.
    let cut_start = Instant::now();
    let mut photos: Vec<Vec<u8>> = ["horse.jpg", "chelsea.jpg", "coins.jpg", "page.jpg"]
        .iter()
        .map(|n| std::fs::read(common::data().join("nonface").join(n)).unwrap())
        .collect();
    photos.push(std::fs::read(common::data().join("multiface/many_face.jpg")).unwrap());
    let (mut cuts, mut outcomes_differ) = (0, 0);
    for i in 0..CUT_INPUTS {
        // The 1280x720 photo (decoded in two strips) one time in ten: it costs ten of the others.
        let seed = if i % 10 == 0 { &photos[4] } else { &photos[rng.below(4)] };
        let rows = jpeg::mcu_rows(seed).expect("cuttable photo");
        let mut bytes = seed.clone();
        let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap() + 14;
        for _ in 0..1 + rng.below(3) {
            if rng.below(8) == 0 {
                bytes = mutate(&mut rng, &bytes, seed);
            } else {
                let at = sos + rng.below(bytes.len().saturating_sub(sos + 2).max(1));
                if let Some(b) = bytes.get_mut(at) {
                    *b = rng.byte();
                }
            }
        }
        let row = 1 + rng.below(rows - 1);
        match check_cut(&bytes, CUT_LIMIT, row) {
            Ok(None) => {}
            Ok(Some(why)) => {
                // Not one of the rules, but not right either: counted and kept.
                if outcomes_differ == 0 {
                    eprintln!("cut input {i}: {why}; kept as {}", keep(&format!("cut-{i}.jpg"), &bytes).display());
                }
                outcomes_differ += 1;
            }
            Err(why) => panic!("cut input {i}: {why}; kept as {}", keep(&format!("cut-{i}.jpg"), &bytes).display()),
        }
        cuts += 1;
    }
    let cut = cut_start.elapsed();
    let total = SMALL_INPUTS + cuts;
    let secs = |d: Duration| d.as_secs_f64();
    eprintln!(
        "{replayed} regression files, {} seeds; {SMALL_INPUTS} small inputs in {:.1} s ({:.0}/s: {decoded} decoded, \
         {refused} refused), {cuts} strip/cut inputs in {:.1} s ({:.0}/s; {outcomes_differ} decoded by one of \
         whole and strips only); {total} in all",
        seeds.len(),
        secs(small),
        SMALL_INPUTS as f64 / secs(small),
        secs(cut),
        cuts as f64 / secs(cut),
    );
    assert!(decoded > SMALL_INPUTS / 50 && refused > SMALL_INPUTS / 2, "mutations reach both outcomes");
}

/// Issue 15's file: libjpeg-turbo sees 60000x60000 where the `image` crate sees 16x16. It used
/// to allocate 10.8 GB and decode for 18.6 s before answering 422.
#[test]
fn rst_before_sof_is_refused_from_libjpegs_own_header() {
    let _serial = serial();
    let bytes = hostile::rst_before_sof(60_000, 60_000);
    assert_eq!(bytes.len(), 65_538 + hostile::small_jpeg(16, 16).len() - 2);
    // The bypass needs the two parsers to disagree: the `image` crate must see the small image.
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes)).with_guessed_format().unwrap();
    assert_eq!(reader.into_dimensions().unwrap(), (16, 16), "the image crate's view");
    let t = Instant::now();
    let (res, largest, peak) = measured(|| decode(&bytes, DEFAULT_MAX_PIXELS));
    let took = t.elapsed();
    eprintln!(
        "rst_before_sof 60000x60000: {:?} in {took:?}, largest allocation {largest} B, peak {peak} B",
        res.as_ref().err()
    );
    assert!(
        matches!(res, Err(Error::ImageTooLarge { width: 60_000, height: 60_000, .. })),
        "{:?}",
        res.map(|i| i.dimensions())
    );
    assert_eq!(facewatch::api::status(&Error::ImageTooLarge { width: 1, height: 1, pixels: 1, max_pixels: 0 }).0, 413);
    assert!(largest < 1 << 20 && peak < 4 << 20, "allocated {largest} B at once, {peak} B at the peak");
    assert!(took < Duration::from_millis(200), "took {took:?}");
}

/// The same trick within what a bypass could decode here: 2000x2000 behind a 16x16 front
/// under a 1 MP limit. The old check (the `image` crate's header) let libjpeg-turbo allocate
/// 12 MB for it and decode it.
#[test]
fn the_limit_holds_on_every_path_into_libjpeg() {
    let _serial = serial();
    let bytes = hostile::rst_before_sof(2_000, 2_000);
    let limit = 1 << 20;
    let (res, largest, _) = measured(|| decode(&bytes, limit));
    assert!(matches!(res, Err(Error::ImageTooLarge { width: 2_000, height: 2_000, .. })), "{:?}", res.err());
    assert!(largest < 1 << 20, "allocated {largest} B at once");
    // The JPEG decoder's own entries, whole, in strips and cut, refuse it the same way.
    for threads in [1, 2] {
        let (res, largest, _) = measured(|| jpeg::decode(&bytes, threads, limit));
        assert!(matches!(res, Err(Error::ImageTooLarge { .. })), "threads {threads}: {:?}", res.err());
        assert!(largest < 1 << 20, "threads {threads}: allocated {largest} B at once");
    }
    assert!(matches!(jpeg::decode_cut_at(&bytes, 1, limit), Err(Error::ImageTooLarge { .. })));
    // Within the limit, parsers that disagree about the frame are refused, not decoded.
    let (res, largest, _) = measured(|| decode(&hostile::rst_before_sof(300, 200), DEFAULT_MAX_PIXELS));
    assert!(matches!(&res, Err(Error::CorruptImage(m)) if m.contains("disagree")), "{:?}", res.err());
    assert_eq!(facewatch::api::status(&Error::CorruptImage(String::new())).0, 422);
    assert!(largest < 1 << 20, "allocated {largest} B at once");
    // And a large photo cut into strips under a limit just below its size is refused by
    // every handle before anything is decoded.
    let photo = std::fs::read(common::data().join("multiface/many_face.jpg")).unwrap();
    let (res, largest, _) = measured(|| jpeg::decode(&photo, 2, 1280 * 720 - 1));
    assert!(matches!(res, Err(Error::ImageTooLarge { width: 1280, height: 720, .. })), "{:?}", res.err());
    assert!(largest < 1 << 20, "allocated {largest} B at once");
    assert_eq!(jpeg::decode(&photo, 2, 1280 * 720).unwrap().dimensions(), (1280, 720));
}

/// Found by the fuzz test above and NOT fixed: one byte changed early in a crowd photo's
/// entropy-coded data makes libjpeg-turbo's whole decode end with "2 extraneous bytes before
/// marker 0xd9" (an error here), while the two-strip decode succeeds: its lower strip is cut
/// out as a JPEG of its own, whose tail bits are shifted, and libjpeg-turbo's read-ahead then
/// swallows those bytes. Pixels agree wherever both succeed; only the verdict on such a tail
/// differs (4 of 1,500 mutated photos).
#[test]
#[ignore = "known: the strip decode accepts a corrupt tail that a whole decode refuses"]
fn strips_and_whole_agree_on_a_corrupt_tail() {
    let mut bytes = std::fs::read(common::data().join("multiface/many_face.jpg")).unwrap();
    assert_eq!(bytes[3767], 0xAF);
    bytes[3767] = 0x47;
    let whole = jpeg::decode(&bytes, 1, DEFAULT_MAX_PIXELS).map(|_| ());
    let strips = jpeg::decode(&bytes, 2, DEFAULT_MAX_PIXELS).map(|_| ());
    assert_eq!(whole.is_ok(), strips.is_ok(), "whole {whole:?}, strips {strips:?}");
}
