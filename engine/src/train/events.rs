//! What a training run reports to its caller, through a channel. The engine never stores
//! anything itself: the runner turns these events into store writes. The events, outcomes and
//! failure classes are the domain's run vocabulary (`experiments::run`); this module says
//! which class an engine error is.

pub use experiments::run::{Event, FailureClass, ManagerWeight, Modality, Outcome};

impl crate::EngineError {
    /// The failure class of this error, from its type: allocation failures are `oom`.
    pub fn failure_class(&self) -> FailureClass {
        if self.is_out_of_memory() {
            FailureClass::Oom
        } else {
            FailureClass::Error
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_is_recognised_from_the_error_type() {
        let oom = crate::EngineError::from(tch::TchError::Torch(
            "CUDA out of memory. Tried to allocate 2.00 GiB".into(),
        ));
        assert_eq!(oom.failure_class(), FailureClass::Oom);
        let other = crate::EngineError::from(crate::InputError::NoLoss);
        assert_eq!(other.failure_class(), FailureClass::Error);
    }
}
