//! The chart font, embedded in the binary: DejaVu Sans (Bitstream Vera licence, see
//! `assets/DejaVu-LICENSE.txt`; copied from Debian's fonts-dejavu-core 2.37-6).
//!
//! Lambda images have no system fonts, so nothing here looks at the file system: the
//! bytes are compiled in and registered with plotters' `ab_glyph` font table under a
//! family name no system has, so a chart can only render text from these bytes.

use std::sync::OnceLock;

use plotters::style::{FontFamily, FontStyle, register_font};

use crate::ChartError;

/// The family name every text style of the charts uses.
pub const FAMILY: &str = "tradeflow-dejavu-sans";

static REGULAR: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../assets/DejaVuSans-Bold.ttf");

static REGISTERED: OnceLock<bool> = OnceLock::new();

/// Registers the embedded fonts once per process; later calls are free.
///
/// # Errors
/// `ChartError::Font` if the embedded bytes are not a font plotters can parse.
pub fn init() -> Result<(), ChartError> {
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, REGULAR).is_ok()
            && register_font(FAMILY, FontStyle::Bold, BOLD).is_ok()
    });
    if ok { Ok(()) } else { Err(ChartError::Font) }
}

/// The embedded family, for text styles.
pub fn family() -> FontFamily<'static> {
    FontFamily::Name(FAMILY)
}
