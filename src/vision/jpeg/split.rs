//! Cuts a baseline JPEG at an MCU row into a JPEG of its own holding the rows below, so that a
//! second thread can decode the lower part of a frame without libjpeg-turbo first decoding
//! every row above it (its cropping has to Huffman-decode them, about 60 % of a whole decode).
//!
//! Finding the cut still means walking the Huffman data above it ([`huffman::Walker`]), but
//! that walk reads only code lengths and runs at about 0.6x libjpeg-turbo's speed. The lower
//! part's data is then the original bits from the cut on, except that the first block of each
//! component must code its DC value outright (DC values are coded as differences, and a new
//! image starts from zero), so those few codes are written anew.
//!
//! The new image starts one MCU row above the wanted rows: libjpeg-turbo's chroma upsampling
//! blends each row with its neighbours, and at the new image's top edge it has none. Decoding
//! from one MCU row higher and dropping that row gives pixels identical to a whole decode
//! (`tests` in `mod.rs`).

use super::huffman::{BitWriter, Clean, Walker};
use super::layout::Layout;

/// The rows from `mcu_row`'s first row down, as a JPEG of their own.
pub struct Lower {
    pub bytes: Vec<u8>,
    /// Rows at the top of the new image that lie above the wanted ones (decode and drop).
    pub overlap: usize,
}

/// `None` when the data does not allow it (it ends early, holds an invalid code, or a table
/// lacks a code the rewrite needs): then the caller decodes the classic way.
pub fn lower_part(bytes: &[u8], layout: &Layout, mcu_row: usize) -> Option<Lower> {
    if mcu_row == 0 || mcu_row >= layout.mcus_y {
        return None;
    }
    let start_row = mcu_row - 1;
    let data = Clean::new(bytes.get(layout.data_at..)?);
    let walker = Walker::new(layout)?;
    let at = walker.skip(&data, start_row * layout.mcus_x)?;
    let firsts = walker.first_dcs(&data, &at)?;

    let mut bits = BitWriter::with_capacity((data.bits - at.bit) / 8 + 16);
    let mut cursor = at.bit;
    for (c, &(start, end, value)) in firsts.iter().enumerate() {
        bits.copy(&data, cursor, start);
        bits.put_dc(walker.dc_table(c), value)?;
        cursor = end;
    }
    bits.copy(&data, cursor, data.bits);

    let top = start_row * layout.mcu_height;
    let height = u16::try_from(layout.height - top).ok()?;
    let mut out = Vec::with_capacity(layout.data_at + (data.bits - at.bit) / 8 + 1024);
    out.extend_from_slice(&bytes[..layout.data_at]);
    out.get_mut(layout.height_at..layout.height_at + 2)?.copy_from_slice(&height.to_be_bytes());
    bits.stuffed(&mut out);
    out.extend_from_slice(&[0xFF, 0xD9]);
    Some(Lower { bytes: out, overlap: layout.mcu_height })
}
