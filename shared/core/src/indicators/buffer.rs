//! Output buffers for long series: where the pages of a 1,000,000-bar series come from.
//!
//! Measured with `perf stat -e page-faults` on the benchmark machine: writing a fresh 8 MB output
//! costs 2,048 page faults of 4 KB, ≈ 3 µs each on this VM, so a three-output
//! indicator (MACD, Bollinger) spent ≈ 20 ms faulting pages against ≈ 3 ms of
//! arithmetic. numpy, which holds TA-Lib's outputs in the baseline, advises huge pages
//! for every array of 4 MB or more; a small output of glibc's heap is reused warm.
//!
//! So a series of at least [`LARGE`] values lives in an anonymous mapping advised for
//! transparent huge pages (2 MB pages: four faults for 8 MB instead of 2,048), and a
//! dropped one goes back to a small per-thread pool ([`POOL_BYTES`] at most) that the
//! next series of the same process takes without faulting again. Shorter series (every
//! chart and every Lambda invocation: hundreds of bars) are plain zeroed vectors.

use std::cell::RefCell;

use memmap2::MmapMut;

/// Values from which a series gets its own huge-page mapping: 2 MB, one huge page.
pub(super) const LARGE: usize = 1 << 18;

/// Bytes of free mappings a thread keeps for reuse; the rest are unmapped on drop.
/// 256 MB holds the whole catalogue's outputs (16 series) at 2,000,000 bars.
const POOL_BYTES: usize = 256 << 20;

/// Huge-page size on x86-64 and arm64 Linux.
const HUGE_PAGE: usize = 2 << 20;

thread_local! {
    static POOL: RefCell<Vec<MmapMut>> = const { RefCell::new(Vec::new()) };
}

/// A mapping holding `len` f64 values from byte `offset` (2 MB-aligned, so every page
/// of the values can be a huge page).
#[derive(Debug)]
pub(super) struct Pages {
    map: Option<MmapMut>,
    offset: usize,
    len: usize,
}

impl Pages {
    /// `len` values (contents unspecified: the caller writes every one). `None` when
    /// the system refuses the mapping; the caller then uses a vector.
    pub(super) fn new(len: usize) -> Option<Self> {
        let bytes = len.checked_mul(8)?;
        let reused = POOL.with_borrow_mut(|pool| {
            let at = pool
                .iter()
                .position(|m| m.len() >= bytes + HUGE_PAGE && m.len() <= 2 * bytes + HUGE_PAGE)?;
            Some(pool.swap_remove(at))
        });
        let map = match reused {
            Some(map) => map,
            None => {
                let map = MmapMut::map_anon(bytes + HUGE_PAGE).ok()?;
                // Best effort: without transparent huge pages this is a plain mapping.
                #[cfg(target_os = "linux")]
                let _ = map.advise(memmap2::Advice::HugePage);
                map
            }
        };
        let offset = (HUGE_PAGE - map.as_ptr() as usize % HUGE_PAGE) % HUGE_PAGE;
        Some(Self {
            map: Some(map),
            offset,
            len,
        })
    }

    pub(super) fn as_slice(&self) -> &[f64] {
        match &self.map {
            Some(m) => bytemuck::cast_slice(&m[self.offset..self.offset + self.len * 8]),
            None => &[],
        }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [f64] {
        match &mut self.map {
            Some(m) => bytemuck::cast_slice_mut(&mut m[self.offset..self.offset + self.len * 8]),
            None => &mut [],
        }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        let Some(map) = self.map.take() else {
            return;
        };
        // During thread teardown the pool may be gone: then the mapping is unmapped.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let held: usize = pool.iter().map(|m| m.len()).sum();
            if held + map.len() <= POOL_BYTES {
                pool.push(map);
            }
        });
    }
}

/// Storage for `len` values: huge-page [`Pages`] from [`LARGE`] values on, else a vector.
#[derive(Debug)]
pub(super) enum Buffer {
    Vec(Vec<f64>),
    Pages(Pages),
}

impl Buffer {
    /// Room for `len` values, each to be written by the caller.
    pub(super) fn new(len: usize) -> Self {
        if len >= LARGE
            && let Some(pages) = Pages::new(len)
        {
            return Buffer::Pages(pages);
        }
        Buffer::Vec(vec![0.0; len])
    }

    pub(super) fn as_slice(&self) -> &[f64] {
        match self {
            Buffer::Vec(v) => v,
            Buffer::Pages(p) => p.as_slice(),
        }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [f64] {
        match self {
            Buffer::Vec(v) => v,
            Buffer::Pages(p) => p.as_mut_slice(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_aligned_mappings_that_are_reused() {
        let mut a = Buffer::new(LARGE);
        let Buffer::Pages(pages) = &a else {
            panic!("a {LARGE}-value buffer is not a mapping");
        };
        assert_eq!(pages.as_slice().as_ptr() as usize % HUGE_PAGE, 0);
        a.as_mut_slice().fill(1.5);
        let first = a.as_slice().as_ptr();
        drop(a);

        let b = Buffer::new(LARGE);

        assert_eq!(
            b.as_slice().as_ptr(),
            first,
            "the dropped mapping was not reused"
        );
        assert_eq!(b.as_slice().len(), LARGE);
    }

    #[test]
    fn short_buffers_are_vectors() {
        let b = Buffer::new(500);
        assert!(matches!(b, Buffer::Vec(ref v) if v.len() == 500));
    }

    #[test]
    fn the_pool_keeps_at_most_its_budget() {
        let big = POOL_BYTES / 8 / 3;
        let buffers: Vec<Buffer> = (0..4).map(|_| Buffer::new(big)).collect();
        drop(buffers);
        let held: usize = POOL.with_borrow(|p| p.iter().map(|m| m.len()).sum());
        assert!(held <= POOL_BYTES, "pool holds {held} bytes");
        assert!(held > 0);
    }
}
