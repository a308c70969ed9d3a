//! Request shapes are JSON objects only. serde reads a struct from an array of its fields in
//! order as well (`[null, 5]` for `{"a": null, "b": 5}`), which no client means and no schema
//! allows; these read a struct from a map alone. Use [`Obj`] for a whole body, and the
//! functions as `#[serde(deserialize_with = ...)]` on the fields that hold structs.

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A `T` read from a JSON object (never an array).
pub struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Obj<T>, M::Error> {
                // The values are still read by the outer deserializer (raw JSON included).
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// A struct field: an object.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Obj::deserialize(d).map(|o| o.0)
}

/// An optional struct field: an object or null.
pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<Obj<T>>::deserialize(d).map(|o| o.map(|o| o.0))
}

/// A field that is present, even as `null` (which clears it): `Some(None)`; absent: `None`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// [`present`] for a struct: an object, or `null`.
pub fn present_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    optional_object(d).map(Some)
}

/// A list of structs: an array of objects.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<Obj<T>>::deserialize(d).map(|v| v.into_iter().map(|o| o.0).collect())
}

/// A list of structs that, when present, must be an array of objects (not null).
pub fn some_objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    objects(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default, deserialize_with = "optional_object")]
        one: Option<Inner>,
        #[serde(default, deserialize_with = "objects")]
        many: Vec<Inner>,
        #[serde(default, deserialize_with = "some_objects")]
        batch: Option<Vec<Inner>>,
    }

    fn read(s: &str) -> Result<Outer, serde_json::Error> {
        serde_json::from_str::<Obj<Outer>>(s).map(|o| o.0)
    }

    #[test]
    fn objects_are_read_and_arrays_refused() {
        let ok = read(r#"{"one": {"a": 1}, "many": [{"a": 2}], "batch": [{}]}"#).unwrap();
        assert_eq!(ok.one, Some(Inner { a: Some(1) }));
        assert_eq!(ok.many, vec![Inner { a: Some(2) }]);
        assert_eq!(ok.batch, Some(vec![Inner { a: None }]));
        assert_eq!(read(r#"{"one": null}"#).unwrap().one, None);
        assert_eq!(read("{}").unwrap().batch, None);
        for bad in [
            "[null, [], []]",
            r#"{"one": [1]}"#,
            r#"{"many": [[2]]}"#,
            r#"{"batch": null}"#,
            r#"{"batch": [[]]}"#,
        ] {
            let e = read(bad).unwrap_err().to_string();
            assert!(
                e.contains("JSON object") || e.contains("sequence"),
                "{bad}: {e}"
            );
        }
    }
}
