//! Pure decision for conditional PATCHes (`If-Match`).
//!
//! AMI-based BMCs (Gigabyte, Lenovo SR655, ASRock Rack) answer a PATCH without
//! `If-Match` with **428 Precondition Required** (gofish#171, ansible#56150),
//! Huawei iBMC with 412. The driver sends `If-Match` only once a BMC has asked
//! for it (then on every PATCH to that BMC): BMCs that do not need it never
//! see a header they might mishandle. A 412 on a PATCH that carried an ETag
//! means the resource changed since it was read: read it again, once.

/// What to do after a PATCH answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep this answer.
    Done,
    /// The BMC requires `If-Match`: remember that for the endpoint and send
    /// the PATCH again with the ETag already known (read the resource when
    /// none is).
    RequireIfMatch,
    /// The ETag sent was stale: read the resource again and resend.
    Refresh,
}

/// The step after a PATCH answered `status`; `sent_if_match` tells whether it
/// carried `If-Match`, `retried` whether this already was the second attempt.
pub(crate) fn after_patch(status: u16, sent_if_match: bool, retried: bool) -> Step {
    match (status, sent_if_match, retried) {
        (_, _, true) => Step::Done,
        (428, false, false) => Step::RequireIfMatch,
        (412, false, false) => Step::RequireIfMatch,
        (412 | 428, true, false) => Step::Refresh,
        _ => Step::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(after_patch(204, false, false), Step::Done);
        assert_eq!(after_patch(428, false, false), Step::RequireIfMatch);
        assert_eq!(after_patch(412, false, false), Step::RequireIfMatch);
        assert_eq!(after_patch(412, true, false), Step::Refresh);
        // Never more than one retry.
        assert_eq!(after_patch(428, true, true), Step::Done);
        assert_eq!(after_patch(400, false, false), Step::Done);
    }
}
