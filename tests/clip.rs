//! The evaluation clip generator on a tiny clip: same seed, same frames and truth; the truth
//! holds (boxes inside the frame, faces growing, enrolled photos never shown); ffmpeg encodes
//! it and decodes it back to the frames that were drawn.

mod common;

use std::collections::BTreeSet;

use facewatch::eval::clip::{self, Clip, ClipOptions, Codec};
use facewatch::eval::replay::decode_video;

fn tiny(seed: u64) -> ClipOptions {
    ClipOptions { passes: 6, enrolled: 3, width: 192, height: 144, fps: 5, ..ClipOptions::new(seed, &common::data()) }
}

#[test]
fn the_same_seed_gives_the_same_clip_and_its_truth_holds() {
    let a = Clip::plan(&tiny(17)).unwrap();
    let b = Clip::plan(&tiny(17)).unwrap();
    let c = Clip::plan(&tiny(18)).unwrap();
    assert_eq!(a.manifest, b.manifest);
    assert_eq!(a.truth, b.truth);
    assert!(a.manifest.frames >= 10, "{} frames", a.manifest.frames);
    for f in 0..a.manifest.frames {
        assert!(a.frame(f) == b.frame(f), "frame {f} differs between two plans of seed 17");
    }
    assert_ne!(a.truth, c.truth, "another seed, another clip");
    assert!((0..a.manifest.frames.min(c.manifest.frames)).any(|f| a.frame(f) != c.frame(f)));

    let m = &a.manifest;
    assert_eq!(m.passes.len(), 6);
    assert_eq!(m.passes.iter().filter(|p| p.subject.is_some()).count(), 3);
    assert_eq!(m.enroll.len(), 3);
    // Enrolled photos are never shown, and everyone shown is who the truth says.
    let enrolled: BTreeSet<&String> = m.enroll.iter().flat_map(|e| &e.photos).collect();
    assert!(!enrolled.is_empty());
    for p in &m.passes {
        assert!(p.photos.len() >= 2, "pass {} turns: {:?}", p.id, p.photos);
        for photo in &p.photos {
            assert!(!enrolled.contains(photo), "pass {} shows enrolled photo {photo}", p.id);
            assert!(photo.starts_with(&format!("{}/", p.identity)), "{photo} is not {}", p.identity);
        }
        let e = m.enroll.iter().find(|e| e.identity == p.identity);
        assert_eq!(e.map(|e| &e.subject), p.subject.as_ref(), "pass {}: enrolled iff it has a subject", p.id);
    }

    let (w, h) = (m.width as f32, m.height as f32);
    for t in &a.truth {
        assert!((t.time - t.frame as f64 / m.fps as f64).abs() < 1e-9);
        for p in &t.people {
            let [x, y, bw, bh] = p.bbox;
            assert!(x >= 0.0 && y >= 0.0 && bw > 0.0 && bh > 0.0 && x + bw <= w && y + bh <= h, "{t:?}");
            assert!((0.0..=1.0).contains(&p.visible));
            let pass = &m.passes[p.pass as usize];
            assert_eq!((&p.identity, &p.subject), (&pass.identity, &pass.subject));
            assert!((pass.first_frame..=pass.last_frame).contains(&t.frame));
        }
    }
    // Every face grows along its approach: small where it first appears, several times larger
    // at its largest.
    for p in &m.passes {
        let sides: Vec<f32> = a
            .truth
            .iter()
            .filter_map(|t| t.people.iter().find(|q| q.pass == p.id).map(|q| q.bbox[2].max(q.bbox[3])))
            .collect();
        let largest = sides.iter().cloned().fold(0.0, f32::max);
        assert!(sides[0] <= 25.0, "pass {} starts at {} px", p.id, sides[0]);
        assert!(largest >= 1.5 * sides[0], "pass {} grows from {} to {largest}", p.id, sides[0]);
        let peak = sides.iter().position(|&s| s == largest).unwrap();
        assert!(sides[..=peak].windows(2).all(|s| s[1] >= s[0] - 0.01), "pass {}: {sides:?}", p.id);
    }
    // People overlap in time: more than one face in some frame.
    assert!(a.truth.iter().any(|t| t.people.len() >= 2));
}

#[test]
fn ffmpeg_encodes_the_clip_and_decodes_it_back() {
    let dir = tempfile::tempdir().unwrap();
    for codec in [Codec::H264, Codec::Mjpeg] {
        let out = dir.path().join(format!("{codec:?}"));
        let plan = Clip::plan(&ClipOptions { codec, ..tiny(5) }).unwrap();
        plan.write(&out).unwrap();
        let (m, truth) = clip::read(&out).unwrap();
        assert_eq!((&m, &truth), (&plan.manifest, &plan.truth), "{codec:?}: manifest and truth read back");
        let (mut worst, mut i) = (0f64, 0);
        let n = decode_video(&out.join(&m.video), m.width, m.height, m.frames + 10, |img| {
            let drawn = plan.frame(i);
            i += 1;
            let diff: f64 = img.as_raw().iter().zip(drawn.as_raw()).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum();
            worst = worst.max(diff / drawn.as_raw().len() as f64);
            Ok(())
        })
        .unwrap();
        assert_eq!(n, m.frames, "{codec:?}: every frame decoded");
        // Lossy, but the same picture: a few levels per channel on average.
        assert!(worst < 6.0, "{codec:?}: mean difference {worst:.2} levels");
    }
    let err = Clip::plan(&ClipOptions { width: 191, ..tiny(5) }).err().expect("odd width refused");
    assert!(err.to_string().contains("width 191"), "{err}");
}
