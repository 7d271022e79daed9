//! `SeriesValues`: one indicator output, 8 bytes a bar, with `None` (JSON `null`) for
//! the warm-up and for bars without a value.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::buffer::Buffer;

/// The values of one series, aligned index-for-index with the bars.
///
/// Stored as a NaN-padded `Vec<f64>` rather than `Vec<Option<f64>>` (16 bytes a value):
/// at 1,000,000 bars the options doubled the fresh memory every run faulted in, which
/// cost more than the arithmetic. NaN reads as `None`, so a series holds no NaN value:
/// `None` means "no value at this bar" (warm-up, or VWAP over a window without volume).
///
/// Serializes as a list of numbers and `null`s, the wire format of `Vec<Option<f64>>`,
/// and deserializes from it. A long series (a million bars) is held in huge pages
/// (`buffer.rs`); that changes where the values live, not what they are.
#[derive(Debug)]
pub struct SeriesValues(Buffer);

impl SeriesValues {
    /// Wraps values computed with NaN where there is no value; takes the vector as is.
    pub fn from_nan_padded(values: Vec<f64>) -> Self {
        Self(Buffer::Vec(values))
    }

    pub(super) fn from_buffer(buffer: Buffer) -> Self {
        Self(buffer)
    }

    /// Number of bars covered, warm-up included.
    pub fn len(&self) -> usize {
        self.as_nan_padded().len()
    }

    /// Whether the series covers no bar.
    pub fn is_empty(&self) -> bool {
        self.as_nan_padded().is_empty()
    }

    /// The value at bar `i`: `None` during the warm-up, where there is no value, or past
    /// the end.
    pub fn get(&self, i: usize) -> Option<f64> {
        self.as_nan_padded().get(i).copied().and_then(value)
    }

    /// The values in bar order, `None` where there is no value.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Option<f64>> + ExactSizeIterator + '_ {
        self.as_nan_padded().iter().map(|&v| value(v))
    }

    /// The raw values, NaN where there is no value.
    pub fn as_nan_padded(&self) -> &[f64] {
        self.0.as_slice()
    }

    /// The last value, if any.
    pub fn latest(&self) -> Option<f64> {
        self.as_nan_padded().iter().rev().find_map(|&v| value(v))
    }

    /// Number of bars with a value.
    pub fn count(&self) -> usize {
        self.as_nan_padded().iter().filter(|v| !v.is_nan()).count()
    }
}

impl Default for SeriesValues {
    fn default() -> Self {
        Self::from_nan_padded(Vec::new())
    }
}

impl Clone for SeriesValues {
    fn clone(&self) -> Self {
        Self::from_nan_padded(self.as_nan_padded().to_vec())
    }
}

fn value(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

/// Equal when the same bars have values and those values are equal (NaN padding
/// compares equal to NaN padding, unlike `f64`'s `==`).
impl PartialEq for SeriesValues {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl FromIterator<Option<f64>> for SeriesValues {
    fn from_iter<I: IntoIterator<Item = Option<f64>>>(iter: I) -> Self {
        Self::from_nan_padded(iter.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    }
}

impl From<Vec<Option<f64>>> for SeriesValues {
    fn from(values: Vec<Option<f64>>) -> Self {
        values.into_iter().collect()
    }
}

impl Serialize for SeriesValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for SeriesValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumbersOrNulls;

        impl<'de> Visitor<'de> for NumbersOrNulls {
            type Value = SeriesValues;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of numbers and nulls")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Straight into 8-byte slots, without a Vec<Option<f64>> in between.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(v) = seq.next_element::<Option<f64>>()? {
                    out.push(v.unwrap_or(f64::NAN));
                }
                Ok(SeriesValues::from_nan_padded(out))
            }
        }

        deserializer.deserialize_seq(NumbersOrNulls)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn warm_up_serializes_as_null_and_null_reads_back_as_none() {
        let values = SeriesValues::from_nan_padded(vec![f64::NAN, f64::NAN, 1.5, f64::NAN, 2.25]);

        let wire = serde_json::to_value(&values).unwrap();
        let back: SeriesValues = serde_json::from_value(wire.clone()).unwrap();

        assert_eq!(wire, json!([null, null, 1.5, null, 2.25]));
        assert_eq!(back, values);
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            [None, None, Some(1.5), None, Some(2.25)]
        );
    }

    #[test]
    fn wire_format_is_that_of_a_vec_of_options() {
        let old: Vec<Option<f64>> = vec![None, Some(-0.5), Some(1e300), None, Some(3.0)];

        let text = serde_json::to_string(&old).unwrap();
        let values: SeriesValues = serde_json::from_str(&text).unwrap();

        assert_eq!(serde_json::to_string(&values).unwrap(), text);
        assert_eq!(values, SeriesValues::from(old));
    }

    #[test]
    fn accessors_read_nan_as_none() {
        let values: SeriesValues = [None, Some(1.0), Some(2.0), None].into_iter().collect();

        assert_eq!(values.len(), 4);
        assert_eq!(values.get(0), None);
        assert_eq!(values.get(2), Some(2.0));
        assert_eq!(values.get(9), None);
        assert_eq!(values.latest(), Some(2.0));
        assert_eq!(values.count(), 2);
        assert!(values.as_nan_padded()[3].is_nan());
        assert_eq!(SeriesValues::default().latest(), None);
    }
}
