//! `mount_point`: a listener's clients live under a topic prefix they do not
//! see (Mosquitto's multi-tenant namespaces). What they publish, subscribe
//! to, unsubscribe from and will with gets the prefix in front before
//! anything else looks at it (access control included, as in Mosquitto);
//! what they receive has it taken off. A shared subscription's filter is
//! mounted inside its `$share/GROUP/` (Mosquitto 2.0 mounts the whole
//! string, which no shared subscription then matches).
//!
//! Nothing here runs for a listener without a mount point.

use starling_proto::{TopicFilter, TopicName};

const SHARE: &str = "$share/";

/// `topic` under `mount`, or why not (a mounted name of more than 65,535
/// bytes).
pub(super) fn topic(mount: &str, topic: &TopicName) -> Option<TopicName> {
    TopicName::try_from(format!("{mount}{}", topic.as_str()).as_str()).ok()
}

/// `filter` under `mount`; `$share/GROUP/F` becomes `$share/GROUP/MOUNT F`.
pub(super) fn filter(mount: &str, filter: &TopicFilter) -> Option<TopicFilter> {
    let text = filter.as_str();
    let mounted = match text
        .strip_prefix(SHARE)
        .and_then(|rest| rest.split_once('/'))
    {
        Some((group, inner)) => format!("{SHARE}{group}/{mount}{inner}"),
        None => format!("{mount}{text}"),
    };
    TopicFilter::try_from(mounted.as_str()).ok()
}

/// The topic a client under `mount` is shown: `topic` without the prefix.
/// `None` for a topic outside the mount point (which its filters cannot
/// match; Mosquitto drops such a message too).
pub(super) fn unmounted(mount: &str, topic: &TopicName) -> Option<TopicName> {
    let rest = topic.as_str().strip_prefix(mount)?;
    if rest.is_empty() {
        return None;
    }
    TopicName::try_from(rest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> TopicName {
        TopicName::try_from(text).unwrap()
    }

    fn filt(text: &str) -> TopicFilter {
        TopicFilter::try_from(text).unwrap()
    }

    #[test]
    fn topics_and_filters_go_under_the_mount_point_and_come_back() {
        assert_eq!(
            topic("tenant-a/", &name("sensors/1")),
            Some(name("tenant-a/sensors/1"))
        );
        assert_eq!(
            filter("tenant-a/", &filt("sensors/#")),
            Some(filt("tenant-a/sensors/#"))
        );
        assert_eq!(filter("tenant-a/", &filt("#")), Some(filt("tenant-a/#")));
        assert_eq!(
            filter("tenant-a/", &filt("$share/g/sensors/+")),
            Some(filt("$share/g/tenant-a/sensors/+"))
        );
        assert_eq!(
            unmounted("tenant-a/", &name("tenant-a/sensors/1")),
            Some(name("sensors/1"))
        );
        assert_eq!(unmounted("tenant-a/", &name("tenant-b/sensors/1")), None);
        assert_eq!(unmounted("tenant-a/", &name("tenant-a/")), None);
    }
}
