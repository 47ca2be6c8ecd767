//! NUL-terminated text for callbacks, on the stack when it is short.
//!
//! Events reach C per message, and a heap `CString` for each string handed
//! to a callback costs an allocation and a free per message: a measurable
//! share of the inbound path (see docs/benchmarks.md). Short text is copied
//! into a buffer on the stack instead; longer text falls back to the heap.

use std::ffi::{c_char, CString};
use std::mem::MaybeUninit;

use crate::cstring::to_cstring;

pub(crate) struct CText<const N: usize> {
    /// Only `..=len` is initialised: zeroing the whole buffer per message
    /// would cost more than the copy.
    inline: [MaybeUninit<u8>; N],
    heap: Option<CString>,
    len: usize,
}

impl<const N: usize> CText<N> {
    pub fn new(s: &str) -> CText<N> {
        // Interior NULs are replaced by `to_cstring`, which also takes long text.
        Self::build(s, !s.as_bytes().contains(&0))
    }

    /// For validated JSON text, which cannot hold a NUL byte (JSON escapes
    /// control characters), so the scan for one is skipped.
    pub fn json(json: &str) -> CText<N> {
        Self::build(json, true)
    }

    fn build(s: &str, nul_free: bool) -> CText<N> {
        let bytes = s.as_bytes();
        let mut text = CText {
            inline: [MaybeUninit::uninit(); N],
            heap: None,
            len: bytes.len(),
        };
        if nul_free && bytes.len() < N {
            for (slot, &b) in text.inline.iter_mut().zip(bytes) {
                slot.write(b);
            }
            text.inline[bytes.len()].write(0);
        } else {
            let heap = to_cstring(s);
            text.len = heap.as_bytes().len();
            text.heap = Some(heap);
        }
        text
    }

    /// Valid while `self` is neither moved nor dropped.
    pub fn as_ptr(&self) -> *const c_char {
        match &self.heap {
            Some(heap) => heap.as_ptr(),
            None => self.inline.as_ptr().cast(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn read<const N: usize>(t: &CText<N>) -> String {
        // SAFETY: as_ptr points at a NUL-terminated buffer owned by `t`.
        let s = unsafe { CStr::from_ptr(t.as_ptr()) };
        s.to_str().unwrap().to_owned()
    }

    #[test]
    fn short_text_is_inline_and_terminated() {
        let t = CText::<8>::new("abc");
        assert!(t.heap.is_none());
        assert_eq!(read(&t), "abc");
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn text_that_fills_the_buffer_goes_to_the_heap() {
        let t = CText::<4>::new("abcd");
        assert!(t.heap.is_some());
        assert_eq!(read(&t), "abcd");
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn json_text_is_inline_and_terminated() {
        let t = CText::<64>::json(r#"{"a":[1,2]}"#);
        assert!(t.heap.is_none());
        assert_eq!(read(&t), r#"{"a":[1,2]}"#);
        assert_eq!(t.len(), 11);
    }

    #[test]
    fn interior_nul_is_replaced_as_everywhere_else() {
        let t = CText::<16>::new("a\0b");
        assert_eq!(read(&t), "a\u{FFFD}b");
        assert_eq!(t.len(), "a\u{FFFD}b".len());
    }
}
