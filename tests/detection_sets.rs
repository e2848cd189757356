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
