//! Reading a plugin's answer out of its memory with every size limit checked first.
//!
//! The generated bindings lift a whole `decision` into host `String`s and `Vec`s, so a plugin could make
//! the host allocate as much as its own memory holds (a grant of 50,000 tags took ~45 MB of host memory
//! and up to 600 ms). Here every string and list of an answer is lifted as a [`Bounded`]: the length the plugin claims is compared with STS's limit for that field *before*
//! anything is copied, and a longer one is kept as its length only (then refused as
//! `plugin_invalid_grant`). Host work on an answer is therefore bounded by STS's limits, whatever the
//! plugin claims. Messages for people (a denial's reason, a needs-approval's group and reason, an error) keep a
//! cut prefix instead. Both contract versions' decisions are lifted here: 0.1.0's is 0.2.0's without
//! `needs-approval`, and is converted to it.
//!
//! The check has to happen inside the lift: wasmtime runs the plugin's post-return (which frees the
//! answer's buffers) as soon as the call returns, so [`wasmtime::component::WasmList`] and `WasmStr`
//! pointers cannot be read after it. These `Lift` implementations use wasmtime's hidden `__internal`
//! items (as its derive macros do) and delegate to its own `String` and `Vec` lifts once a length passed.

use wasmtime::ValRaw;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift};

use super::fault::PluginFault;
use super::log;
use super::request::{Decision, Grant, SessionTag};
use crate::sts::validate;

/// The most bytes of an inline policy: STS takes 2,048 characters of U+0009–U+00FF, two bytes at most
/// each in UTF-8.
pub const MAX_POLICY_BYTES: usize = validate::MAX_SESSION_POLICY_PLAINTEXT * 2;
/// The most bytes of one policy ARN (IAM's ARN limit).
pub const MAX_ARN_BYTES: usize = 2048;
/// The most bytes of a tag key (128 characters of at most four bytes).
pub const MAX_TAG_KEY_BYTES: usize = 128 * 4;
/// The most bytes of a tag value (256 characters of at most four bytes).
pub const MAX_TAG_VALUE_BYTES: usize = validate::TAG_VALUE_MAX * 4;
/// The most bytes of a message (reason, error) copied; the rest is cut.
pub const MAX_MESSAGE_BYTES: usize = 4096;

const _: () = assert!(MAX_TAG_KEY_BYTES == *validate::TAG_KEY_LENGTH.end() * 4);

/// The `(pointer, length)` of a string or list in the canonical ABI (32-bit memories).
fn pointer_pair_from_flat(src: &[ValRaw; 2]) -> (usize, usize) {
    (src[0].get_u32() as usize, src[1].get_u32() as usize)
}

fn pointer_pair_from_memory(bytes: &[u8]) -> (usize, usize) {
    let word =
        |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes")) as usize;
    (word(0), word(4))
}

/// A guest `string` (`T` = `String`, at most `MAX` bytes) or `list` (`T` = `Vec<_>`, at most `MAX` items),
/// lifted only when its length is within `MAX`; a longer one is kept as its length only. Both are a
/// pointer and a length in the canonical ABI, the length second.
pub(crate) struct Bounded<T, const MAX: usize>(Result<T, usize>);

unsafe impl<T, const MAX: usize> ComponentType for Bounded<T, MAX>
where
    T: ComponentType<Lower = [ValRaw; 2]>,
{
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = T::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        T::typecheck(ty, types)
    }
}

unsafe impl<T, const MAX: usize> Lift for Bounded<T, MAX>
where
    T: Lift + ComponentType<Lower = [ValRaw; 2]>,
{
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        // (A UTF-16 component's string length carries a tag bit: such a length is over every limit.)
        let (_, len) = pointer_pair_from_flat(src);
        if len > MAX {
            return Ok(Bounded(Err(len)));
        }
        Ok(Bounded(Ok(T::linear_lift_from_flat(cx, ty, src)?)))
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let (_, len) = pointer_pair_from_memory(bytes);
        if len > MAX {
            return Ok(Bounded(Err(len)));
        }
        Ok(Bounded(Ok(T::linear_lift_from_memory(cx, ty, bytes)?)))
    }
}

/// A bounded guest string.
type Text<const MAX: usize> = Bounded<String, MAX>;

/// A message for people: at most [`MAX_MESSAGE_BYTES`] of it copied, the rest cut.
pub(crate) struct Message {
    text: String,
    cut_from: Option<usize>,
}

unsafe impl ComponentType for Message {
    type Lower = <String as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <String as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <String as ComponentType>::typecheck(ty, types)
    }
}

impl Message {
    /// The first bytes of a message too long to copy whole (read as UTF-8, lossily).
    fn prefix(cx: &mut LiftContext<'_>, ptr: usize, len: usize) -> Message {
        let memory = cx.memory();
        let end = ptr.saturating_add(MAX_MESSAGE_BYTES).min(memory.len());
        let text = memory
            .get(ptr..end)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default();
        Message {
            text,
            cut_from: Some(len),
        }
    }
}

unsafe impl Lift for Message {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let (ptr, len) = pointer_pair_from_flat(src);
        if len > MAX_MESSAGE_BYTES {
            return Ok(Message::prefix(cx, ptr, len));
        }
        Ok(Message {
            text: String::linear_lift_from_flat(cx, ty, src)?,
            cut_from: None,
        })
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let (ptr, len) = pointer_pair_from_memory(bytes);
        if len > MAX_MESSAGE_BYTES {
            return Ok(Message::prefix(cx, ptr, len));
        }
        Ok(Message {
            text: String::linear_lift_from_memory(cx, ty, bytes)?,
            cut_from: None,
        })
    }
}

impl Message {
    /// The message as a caller or administrator sees it: sanitized, cut to `max_bytes`.
    fn show(&self, max_bytes: usize) -> String {
        let shown = log::sanitize(&self.text, max_bytes);
        match self.cut_from {
            Some(len) if !shown.ends_with("[truncated]") => {
                format!("{shown} …[truncated from {len} bytes]")
            }
            _ => shown,
        }
    }
}

/// `session-tag`, bounded.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct RawTag {
    key: Text<MAX_TAG_KEY_BYTES>,
    value: Text<MAX_TAG_VALUE_BYTES>,
}

/// `grant`, bounded.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct RawGrant {
    policy: Option<Text<MAX_POLICY_BYTES>>,
    #[component(name = "policy-arns")]
    policy_arns: Bounded<Vec<Text<MAX_ARN_BYTES>>, { validate::MAX_POLICY_ARNS }>,
    tags: Bounded<Vec<RawTag>, { validate::MAX_TAGS }>,
    #[component(name = "duration-seconds")]
    duration_seconds: u32,
}

/// `denial`, bounded.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct RawDenial {
    reason: Message,
}

/// `decision` of 0.1.0, bounded.
#[derive(ComponentType, Lift)]
#[component(variant)]
pub(crate) enum RawDecisionV0_1 {
    #[component(name = "allow")]
    Allow(RawGrant),
    #[component(name = "deny")]
    Deny(RawDenial),
}

/// `approval-requirement` (0.2.0), bounded: its group and reason are messages, cut like a denial's reason.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct RawApprovalRequirement {
    group: Message,
    reason: Message,
    #[component(name = "max-duration-seconds")]
    max_duration_seconds: Option<u32>,
}

/// `decision` of 0.2.0, bounded.
#[derive(ComponentType, Lift)]
#[component(variant)]
pub(crate) enum RawDecisionV0_2 {
    #[component(name = "allow")]
    Allow(RawGrant),
    #[component(name = "deny")]
    Deny(RawDenial),
    #[component(name = "needs-approval")]
    NeedsApproval(RawApprovalRequirement),
}

impl From<RawDecisionV0_1> for RawDecisionV0_2 {
    fn from(raw: RawDecisionV0_1) -> Self {
        match raw {
            RawDecisionV0_1::Allow(grant) => RawDecisionV0_2::Allow(grant),
            RawDecisionV0_1::Deny(denial) => RawDecisionV0_2::Deny(denial),
        }
    }
}

/// `plugin-error`, bounded.
#[derive(ComponentType, Lift)]
#[component(variant)]
pub(crate) enum RawPluginError {
    #[component(name = "invalid-config")]
    InvalidConfig(Message),
    #[component(name = "internal")]
    Internal(Message),
}

/// `config-error`, bounded.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct RawConfigError {
    message: Message,
    pointer: Option<Message>,
}

/// What 0.1.0's `evaluate` returns, bounded.
pub(crate) type EvaluateResultV0_1 = Result<RawDecisionV0_1, RawPluginError>;
/// What 0.2.0's `evaluate` returns, bounded; 0.1.0's answers are converted to it.
pub(crate) type EvaluateResult = Result<RawDecisionV0_2, RawPluginError>;
/// What `validate-config` returns, bounded.
pub(crate) type ValidateResult = Result<(), RawConfigError>;

fn too_many(what: &str, count: usize, max: usize) -> PluginFault {
    PluginFault::InvalidGrant(format!("{count} {what}, more than the {max} STS accepts"))
}

fn field<const MAX: usize>(
    value: Text<MAX>,
    what: impl FnOnce() -> String,
) -> Result<String, PluginFault> {
    value.0.map_err(|len| {
        PluginFault::InvalidGrant(format!(
            "{} is {len} bytes, more than STS can take ({MAX} bytes at most)",
            what()
        ))
    })
}

/// The decision (of either version), with a grant over STS's counts and sizes refused.
pub(crate) fn decision(
    raw: RawDecisionV0_2,
    max_reason_bytes: usize,
) -> Result<Decision, PluginFault> {
    let grant = match raw {
        RawDecisionV0_2::Deny(denial) => {
            return Ok(Decision::Deny {
                reason: denial.reason.show(max_reason_bytes),
            });
        }
        RawDecisionV0_2::NeedsApproval(needs) => {
            return Ok(Decision::NeedsApproval {
                group: needs.group.show(max_reason_bytes),
                reason: needs.reason.show(max_reason_bytes),
                max_duration_seconds: needs.max_duration_seconds,
            });
        }
        RawDecisionV0_2::Allow(grant) => grant,
    };
    let arns = grant
        .policy_arns
        .0
        .map_err(|n| too_many("policy ARNs", n, validate::MAX_POLICY_ARNS))?;
    let tags = grant
        .tags
        .0
        .map_err(|n| too_many("session tags", n, validate::MAX_TAGS))?;
    let policy = match grant.policy {
        Some(text) => Some(field(text, || "the inline policy".into())?),
        None => None,
    };
    let policy_arns = arns
        .into_iter()
        .enumerate()
        .map(|(i, arn)| field(arn, || format!("policy ARN {i}")))
        .collect::<Result<_, _>>()?;
    let tags = tags
        .into_iter()
        .enumerate()
        .map(|(i, tag)| {
            Ok(SessionTag {
                key: field(tag.key, || format!("the key of session tag {i}"))?,
                value: field(tag.value, || format!("the value of session tag {i}"))?,
            })
        })
        .collect::<Result<_, PluginFault>>()?;
    Ok(Decision::Allow {
        grant: Grant {
            policy,
            policy_arns,
            tags,
            duration_seconds: grant.duration_seconds,
        },
    })
}

/// A plugin's own error report, as the fault it is.
pub(crate) fn plugin_error(raw: RawPluginError) -> PluginFault {
    PluginFault::PluginError {
        message: match raw {
            RawPluginError::InvalidConfig(m) => format!("invalid configuration: {}", m.show(512)),
            RawPluginError::Internal(m) => m.show(512),
        },
    }
}

/// A configuration refusal: its message and JSON pointer.
pub(crate) fn config_error(
    raw: RawConfigError,
    max_message_bytes: usize,
) -> (String, Option<String>) {
    (
        raw.message.show(max_message_bytes),
        raw.pointer.map(|p| p.show(256)),
    )
}
