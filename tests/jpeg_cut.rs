//! The two-strip JPEG decode with the lower strip cut out as a JPEG of its own
//! (`vision::jpeg::split`) must give exactly the pixels of one whole decode, at every MCU row
//! where it can cut, on every real photo of the test set (crowds, non-faces, single faces and
//! a sample of LFW).

mod common;

use facewatch::vision::decode::DEFAULT_MAX_PIXELS;
use facewatch::vision::jpeg;

fn photos() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = ["multiface", "nonface", "singleface"].into_iter().flat_map(common::jpgs).collect();
    // Every 40th LFW identity's first photo: 250x250, a different encoder than the others.
    let mut ids: Vec<_> =
        std::fs::read_dir(common::data().join("faces")).unwrap().flatten().map(|e| e.path()).collect();
    ids.sort();
    v.extend(ids.iter().step_by(40).map(|d| d.join("0001.jpg")));
    v.retain(|p| p.exists());
    v
}

#[test]
fn every_cut_row_of_every_photo_gives_whole_decode_pixels() {
    let files = photos();
    assert!(files.len() >= 100, "only {} photos", files.len());
    let (mut cuts, mut refused) = (0, Vec::new());
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let whole = jpeg::decode(&bytes, 1, DEFAULT_MAX_PIXELS).unwrap();
        let rows = jpeg::mcu_rows(&bytes).unwrap_or_else(|| panic!("{}: not a cuttable baseline JPEG", f.display()));
        // Every row of the crowd photos; about eight rows spread over the others.
        let step = if f.to_string_lossy().contains("multiface") { 1 } else { (rows / 8).max(1) };
        for row in (1..rows).step_by(step) {
            match jpeg::decode_cut_at(&bytes, row, DEFAULT_MAX_PIXELS)
                .unwrap_or_else(|e| panic!("{} cut at MCU row {row}: {e}", f.display()))
            {
                Some(img) => {
                    assert!(img.as_raw() == whole.as_raw(), "{} cut at MCU row {row}: pixels differ", f.display());
                    cuts += 1;
                }
                None => refused.push(format!("{}@{row}", f.display())),
            }
        }
    }
    eprintln!("{} photos: {cuts} cuts equal to a whole decode, {} refused (crop path)", files.len(), refused.len());
    // The crowd photos must all cut everywhere (they are what the cut is for). Elsewhere a cut
    // is refused where an encoder left bytes after the last block (some LFW photos): then the
    // crop path decodes, as checked by `decode` itself.
    assert!(refused.iter().all(|r| !r.contains("multiface")), "crowd cuts refused: {refused:?}");
    assert!(cuts > 500 && refused.len() * 10 < cuts, "{cuts} cuts, {} refused: {refused:?}", refused.len());
}

#[test]
fn the_two_thread_decode_of_crowd_photos_equals_one_thread() {
    for name in ["faces.jpg", "many_face.jpg", "oscar.jpg", "selfie2.jpg"] {
        let bytes = std::fs::read(common::data().join("multiface").join(name)).unwrap();
        assert!(
            jpeg::decode(&bytes, 2, DEFAULT_MAX_PIXELS).unwrap().as_raw()
                == jpeg::decode(&bytes, 1, DEFAULT_MAX_PIXELS).unwrap().as_raw(),
            "{name}"
        );
    }
}
