//! The structure of a baseline JPEG as far as splitting it needs: frame size, sampling,
//! Huffman tables per component, and where the entropy-coded data starts. Anything else
//! (progressive, arithmetic, 12-bit, several scans, restart intervals) is `None`: such images
//! take libjpeg-turbo's own cropping path, which handles everything.

use super::huffman::Table;

/// One component of the scan, in MCU order.
pub struct Component {
    /// Blocks per MCU, across and down (1 x 1 in a single-component scan).
    pub blocks: usize,
    pub dc: usize,
    pub ac: usize,
}

pub struct Layout {
    pub width: usize,
    pub height: usize,
    pub components: Vec<Component>,
    /// MCUs per row and MCU rows.
    pub mcus_x: usize,
    pub mcus_y: usize,
    /// Pixel rows per MCU row.
    pub mcu_height: usize,
    pub dc: [Option<Table>; 4],
    pub ac: [Option<Table>; 4],
    /// Byte offset of the frame header's 16-bit height.
    pub height_at: usize,
    /// Byte offset of the first entropy-coded byte (just after the scan header).
    pub data_at: usize,
}

/// The frame header: size, and per component its id and sampling factors.
struct Frame {
    width: usize,
    height: usize,
    components: Vec<(u8, usize, usize)>,
    /// Byte offset of the 16-bit height.
    height_at: usize,
}

fn be16(b: &[u8], i: usize) -> Option<usize> {
    Some(usize::from(*b.get(i)?) << 8 | usize::from(*b.get(i + 1)?))
}

impl Layout {
    /// Reads the markers up to the first scan; `None` for anything but a plain baseline
    /// (or extended sequential Huffman) 8-bit JPEG with one interleaved scan.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.get(..2)? != [0xFF, 0xD8] {
            return None;
        }
        let mut i = 2;
        let (mut dc, mut ac): ([Option<Table>; 4], [Option<Table>; 4]) = Default::default();
        let mut frame: Option<Frame> = None;
        loop {
            while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
                i += 1; // fill bytes
            }
            if *b.get(i)? != 0xFF {
                return None;
            }
            let marker = *b.get(i + 1)?;
            if matches!(marker, 0x01 | 0xD0..=0xD9) {
                return None; // no length field: not expected before the scan
            }
            let len = be16(b, i + 2)?;
            let seg = b.get(i + 4..(i + 2 + len).max(i + 4))?;
            match marker {
                0xC0 | 0xC1 => {
                    if *seg.first()? != 8 || frame.is_some() {
                        return None;
                    }
                    let (h, w, n) = (be16(seg, 1)?, be16(seg, 3)?, usize::from(*seg.get(5)?));
                    let mut comps = Vec::with_capacity(n);
                    for c in 0..n {
                        let s = seg.get(6 + 3 * c..9 + 3 * c)?;
                        let (hs, vs) = (usize::from(s[1] >> 4), usize::from(s[1] & 15));
                        if !(1..=4).contains(&hs) || !(1..=4).contains(&vs) {
                            return None;
                        }
                        comps.push((s[0], hs, vs));
                    }
                    frame = Some(Frame { width: w, height: h, components: comps, height_at: i + 5 });
                }
                // Progressive, lossless, hierarchical or arithmetic-coded frames.
                0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
                // A restart interval would reset the predictors every few MCUs; not handled.
                0xDD if be16(seg, 0)? != 0 => return None,
                0xC4 => {
                    let mut j = 0;
                    while j < seg.len() {
                        let (class, id) = (seg[j] >> 4, usize::from(seg[j] & 15));
                        let counts: [u8; 16] = seg.get(j + 1..j + 17)?.try_into().ok()?;
                        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
                        let table = Table::new(&counts, seg.get(j + 17..j + 17 + total)?)?;
                        match class {
                            0 => *dc.get_mut(id)? = Some(table),
                            1 => *ac.get_mut(id)? = Some(table),
                            _ => return None,
                        }
                        j += 17 + total;
                    }
                }
                0xDA => return Self::scan(frame?, seg, dc, ac, i + 2 + len),
                _ => {}
            }
            i += 2 + len;
        }
    }

    fn scan(
        Frame { width, height, components: frame, height_at }: Frame,
        seg: &[u8],
        dc: [Option<Table>; 4],
        ac: [Option<Table>; 4],
        data_at: usize,
    ) -> Option<Self> {
        let n = usize::from(*seg.first()?);
        if n != frame.len() || n == 0 || width == 0 || height == 0 {
            return None; // several scans, or a height defined later (DNL)
        }
        if seg.get(1 + 2 * n..4 + 2 * n)? != [0, 63, 0] {
            return None; // not a sequential full-spectrum scan
        }
        let mut components = Vec::with_capacity(n);
        for (c, &(id, hs, vs)) in frame.iter().enumerate() {
            let s = seg.get(1 + 2 * c..3 + 2 * c)?;
            let (d, a) = (usize::from(s[1] >> 4), usize::from(s[1] & 15));
            if s[0] != id || dc.get(d)?.is_none() || ac.get(a)?.is_none() {
                return None;
            }
            // A single-component scan is not interleaved: one block per MCU.
            let blocks = if n == 1 { 1 } else { hs * vs };
            components.push(Component { blocks, dc: d, ac: a });
        }
        let hmax = frame.iter().map(|c| c.1).max()?;
        let vmax = frame.iter().map(|c| c.2).max()?;
        // A single-component scan walks that component's own 8x8 block grid.
        let (mcu_w, mcu_h) = if n == 1 { (8 * hmax / frame[0].1, 8 * vmax / frame[0].2) } else { (8 * hmax, 8 * vmax) };
        Some(Self {
            width,
            height,
            components,
            mcus_x: width.div_ceil(mcu_w),
            mcus_y: height.div_ceil(mcu_h),
            mcu_height: mcu_h,
            dc,
            ac,
            height_at,
            data_at,
        })
    }
}
