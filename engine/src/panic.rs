//! Panics inside the engine caught at a run's boundary. tch's infallible tensor calls panic on
//! any libtorch error (an allocation failure included); a run must end as a classified failure,
//! not take down its worker, and not print a panic report over the progress bars.

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use crate::{EngineError, Result};

thread_local! {
    /// Set while this thread runs inside [`catch`]: its panics are reported as errors instead.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Where the last caught panic happened, for the error message.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Runs `f`, turning a panic into [`EngineError::OutOfMemory`] (an allocation failure) or
/// [`EngineError::Panic`] with where it happened. Panics on other threads print as usual.
pub fn catch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_panic(f) {
        Ok(r) => r,
        Err(caught) => Err(caught.0),
    }
}

/// [`catch`] for code that returns no engine result (a third-party decoder that asserts on
/// damaged input): the panic as an error and its message (boxed: a rare path, kept off the
/// `Ok` size).
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, Box<(EngineError, String)>> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
    let outer = CATCHING.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(outer));
    match result {
        Ok(r) => Ok(r),
        Err(payload) => {
            let e = EngineError::from_panic(payload.as_ref());
            let at = LOCATION.with(|l| l.borrow_mut().take());
            let e = match (e, at) {
                (EngineError::Panic(message), Some(at)) => {
                    EngineError::Panic(format!("{message} (at {at})"))
                }
                (e, _) => e,
            };
            let message = match &e {
                EngineError::Panic(m) => m.clone(),
                other => other.to_string(),
            };
            Err(Box::new((e, message)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_location() {
        let r: Result<()> = catch(|| panic!("boom"));
        let e = r.unwrap_err().to_string();
        assert!(e.starts_with("the engine panicked: boom (at "), "{e}");
        assert!(e.contains("panic.rs"), "{e}");
        assert_eq!(catch(|| Ok(3)).unwrap(), 3);
    }
}
