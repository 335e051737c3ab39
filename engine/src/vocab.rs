//! The closed vocabularies of a record (sex, marital status, blood type,
//! relationship to the household head, biometric modality): each stored as
//! one byte and written in JSON as a fixed word. They sit below both the
//! personal ID (whose `G` digit encodes sex) and the record.

use std::fmt;
use std::str::FromStr;

use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a [`Citizen`](crate::Citizen) or one of its values is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError(pub String);

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SchemaError {}

pub(crate) fn invalid(msg: impl Into<String>) -> SchemaError {
    SchemaError(msg.into())
}

/// Declares a closed vocabulary stored as one byte and written in JSON as a
/// fixed lower-case word.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant,)+ }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored code (never 0, so 0 can mean "none").
            pub fn code(self) -> u8 {
                match self { $($name::$variant => $code,)+ }
            }

            /// The value of a stored code.
            pub fn from_code(code: u8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// The JSON word.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl FromStr for $name {
            type Err = SchemaError;
            fn from_str(s: &str) -> Result<$name, SchemaError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(invalid(format!(
                        concat!("{:?} is not a valid ", stringify!($name), " (one of: {})"),
                        s,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        string_serde!($name);
    };
}

/// serde through `Display` / `FromStr`.
macro_rules! string_serde {
    ($name:ty) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(de::Error::custom)
            }
        }
    };
}

vocabulary!(
    /// Sex as registered.
    Sex {
        /// Nam.
        Male = 1 => "male",
        /// Nữ.
        Female = 2 => "female",
    }
);

vocabulary!(
    /// Marital status (tình trạng hôn nhân).
    MaritalStatus {
        /// Never married.
        Single = 1 => "single",
        /// Married.
        Married = 2 => "married",
        /// Divorced.
        Divorced = 3 => "divorced",
        /// Widowed.
        Widowed = 4 => "widowed",
    }
);

vocabulary!(
    /// ABO and RhD blood type, recorded only when the citizen asked for it.
    BloodType {
        /// O, RhD positive.
        OPos = 1 => "O+",
        /// O, RhD negative.
        ONeg = 2 => "O-",
        /// A, RhD positive.
        APos = 3 => "A+",
        /// A, RhD negative.
        ANeg = 4 => "A-",
        /// B, RhD positive.
        BPos = 5 => "B+",
        /// B, RhD negative.
        BNeg = 6 => "B-",
        /// AB, RhD positive.
        AbPos = 7 => "AB+",
        /// AB, RhD negative.
        AbNeg = 8 => "AB-",
    }
);

vocabulary!(
    /// Relationship to the head of the household.
    Relationship {
        /// The head (chủ hộ).
        Head = 1 => "head",
        /// Wife or husband of the head.
        Spouse = 2 => "spouse",
        /// Child of the head.
        Child = 3 => "child",
        /// Parent of the head.
        Parent = 4 => "parent",
        /// Grandchild of the head.
        Grandchild = 5 => "grandchild",
        /// Grandparent of the head.
        Grandparent = 6 => "grandparent",
        /// Brother or sister of the head.
        Sibling = 7 => "sibling",
        /// Anyone else living in the household.
        Other = 8 => "other",
    }
);

vocabulary!(
    /// A biometric modality with a protected template identifier.
    Modality {
        /// Face.
        Face = 1 => "face",
        /// Fingerprint.
        Fingerprint = 2 => "fingerprint",
    }
);

pub(crate) use string_serde;
