//! [`Patch`]: what a partial update does to one optional field.

/// A partial update of an optional field: leave it, clear it, or set it. (A field that
/// cannot be cleared is an `Option<T>` in a patch: `None` leaves it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// Leave the field as it is.
    #[default]
    Keep,
    /// Remove the field's value.
    Clear,
    /// Give the field this value.
    Set(T),
}

impl<T> Patch<T> {
    /// Whether the patch changes the field.
    pub fn is_change(&self) -> bool {
        !matches!(self, Self::Keep)
    }

    /// The field's value after the patch, given its value before.
    pub fn applied_to(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Clear => None,
            Self::Set(value) => Some(value),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Self::Keep => Patch::Keep,
            Self::Clear => Patch::Clear,
            Self::Set(value) => Patch::Set(f(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Patch;

    #[test]
    fn a_patch_keeps_clears_or_sets() {
        assert_eq!(Patch::Keep.applied_to(Some(1)), Some(1));
        assert_eq!(Patch::<i32>::Clear.applied_to(Some(1)), None);
        assert_eq!(Patch::Set(2).applied_to(None), Some(2));
        assert!(!Patch::<i32>::Keep.is_change());
        assert!(Patch::<i32>::Clear.is_change());
        assert_eq!(Patch::Set(2).map(|v| v * 10), Patch::Set(20));
    }
}
