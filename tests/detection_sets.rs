//! Detection on the labelled sets: no face in non-face photos at the default threshold,
//! several faces in crowd photos, and the live quality gate on real faces.

mod common;

use facewatch::vision::decode::{DEFAULT_MAX_PIXELS, decode_file};
use facewatch::vision::quality::QualityGate;

#[test]
fn no_faces_in_nonface_photos() {
    let mut p = common::pipeline();
    let files = common::jpgs("nonface");
    assert!(files.len() >= 18);
    for f in files {
        let img = decode_file(&f, DEFAULT_MAX_PIXELS).unwrap();
        let d = p.detector.detect(&img).unwrap();
        assert!(d.is_empty(), "{}: {} false detections {:?}", f.display(), d.len(), d);
    }
}

#[test]
fn crowd_photos_give_several_faces() {
    let mut p = common::pipeline();
    let files = common::jpgs("multiface");
    assert!(files.len() >= 6);
    let mut total = 0;
    for f in files {
        let img = decode_file(&f, DEFAULT_MAX_PIXELS).unwrap();
        let faces = p.faces(&img, Some(&QualityGate::default())).unwrap();
        assert!(faces.len() >= 2, "{}: {} faces", f.display(), faces.len());
        let embedded = faces.iter().filter(|x| x.embedding.is_some()).count();
        assert!(embedded >= 2, "{}: only {embedded} usable faces", f.display());
        total += faces.len();
    }
    eprintln!("multiface: {total} faces");
    assert!(total >= 40);
}

#[test]
fn exif_orientation_is_applied() {
    // Rotate a real face photo by 90 degrees and tag it with EXIF orientation 6 (rotate 90 CW
    // to display): decoding must return the upright face, found like the original.
    let src = common::data().join("faces/George_W_Bush/0001.jpg");
    let upright = decode_file(&src, DEFAULT_MAX_PIXELS).unwrap();
    let stored = image::imageops::rotate270(&upright);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&stored).unwrap();
    // APP1 Exif segment, big-endian TIFF, one IFD entry: Orientation (0x0112) = 6.
    let tiff: Vec<u8> = [
        b"MM\x00\x2a\x00\x00\x00\x08".as_slice(),
        &[0x00, 0x01, 0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00],
        &[0x00, 0x00, 0x00, 0x00],
    ]
    .concat();
    let payload = [b"Exif\x00\x00".as_slice(), &tiff].concat();
    let len = (payload.len() + 2) as u16;
    let mut tagged = vec![0xFF, 0xD8, 0xFF, 0xE1];
    tagged.extend_from_slice(&len.to_be_bytes());
    tagged.extend_from_slice(&payload);
    tagged.extend_from_slice(&jpeg[2..]);
    let img = facewatch::vision::decode::decode(&tagged, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(img.dimensions(), upright.dimensions());
    let mut p = common::pipeline();
    let d = p.detector.detect(&img).unwrap();
    assert_eq!(d.len(), 1, "upright face found");
    let re = d[0].landmarks[0];
    let le = d[0].landmarks[1];
    assert!(le[0] > re[0] + 20.0 && (le[1] - re[1]).abs() < 15.0, "eyes level: {re:?} {le:?}");
}

/// A tracked camera detects on a scaled copy of its frame (`[tracking] detect_max_side`) and
/// aligns from the full frame: a real face in a 1920x1080 frame, detected at 1280x720, lands
/// within a few pixels of where full-frame detection puts it, and the chip aligned from the
/// full frame with those landmarks is sharper than one cut from the scaled copy and embeds as
/// the full-frame path's chip does. A frame within the limit is detected exactly as before.
#[test]
fn detection_on_a_downscaled_frame_maps_back_to_full_resolution() {
    use facewatch::vision::{align, quality, shrink::shrink};
    let mut p = common::pipeline();
    let face = decode_file(&common::data().join("faces/George_W_Bush/0001.jpg"), DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(p.detector.detect_within(&face, 1280).unwrap(), p.detector.detect(&face).unwrap());

    let bg = decode_file(&common::data().join("nonface/brick.jpg"), DEFAULT_MAX_PIXELS).unwrap();
    let mut frame = image::imageops::resize(&bg, 1920, 1080, image::imageops::FilterType::Triangle);
    image::imageops::overlay(&mut frame, &face, 1130, 410);
    let largest = |d: Vec<facewatch::vision::detect::Detection>| {
        d.into_iter().max_by(|a, b| a.area().total_cmp(&b.area())).expect("the face is found")
    };
    let full = largest(p.detector.detect_within(&frame, 0).unwrap());
    let scaled = largest(p.detector.detect_within(&frame, 1280).unwrap());
    let side = full.bbox[2];
    assert!(side > 80.0 && full.bbox[0] > 1130.0, "the pasted face: {full:?}");
    let off = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).hypot(a[1] - b[1]);
    let box_off = (0..4).map(|i| (full.bbox[i] - scaled.bbox[i]).abs()).fold(0.0, f32::max);
    let lm_off = (0..5).map(|i| off(full.landmarks[i], scaled.landmarks[i])).fold(0.0, f32::max);
    eprintln!("face {side:.0} px: box within {box_off:.2} px, landmarks within {lm_off:.2} px");
    // YuNet's landmarks move by a few pixels with where the face sits on its anchor grid
    // (another resampler gives the same offsets within a pixel): a tenth of the face at most.
    assert!(box_off <= 0.06 * side && lm_off <= 0.12 * side, "box {box_off} px, landmarks {lm_off} px off");
    // The mapping itself is exact: detected on a copy made by another resampler and scaled
    // back by hand, the landmarks land within a pixel of ours.
    let lanczos = image::imageops::resize(&frame, 1280, 720, image::imageops::FilterType::Lanczos3);
    let by_hand = largest(p.detector.detect_within(&lanczos, 0).unwrap()).landmarks.map(|[x, y]| [x * 1.5, y * 1.5]);
    let mapping_off = (0..5).map(|i| off(by_hand[i], scaled.landmarks[i])).fold(0.0, f32::max);
    assert!(mapping_off <= 1.0, "landmarks {mapping_off} px from the hand-mapped ones");

    let spec = &p.manifest.embedder;
    let (_, chip_full) = align::align(&frame, &full.landmarks, &spec.template, spec.input_size);
    let (_, chip_mapped) = align::align(&frame, &scaled.landmarks, &spec.template, spec.input_size);
    let small = shrink(&frame, 1280, 720);
    let lm_small = scaled.landmarks.map(|[x, y]| [x * 1280.0 / 1920.0, y * 720.0 / 1080.0]);
    let (_, chip_small) = align::align(&small, &lm_small, &spec.template, spec.input_size);
    let sharp = |c: &image::RgbImage| quality::measure(&scaled, c).sharpness;
    eprintln!("sharpness: full frame {:.1}, scaled copy {:.1}", sharp(&chip_mapped), sharp(&chip_small));
    assert!(sharp(&chip_mapped) > sharp(&chip_small), "aligned from full resolution, the chip is sharper");
    let e = p.embedder.embed(&[&chip_full, &chip_mapped]).unwrap();
    let cos: f32 = e[0].iter().zip(&e[1]).map(|(a, b)| a * b).sum();
    eprintln!("cosine to the full-frame path's embedding: {cos:.4}");
    assert!(cos > 0.98, "cosine {cos}");
}
