use crate::{model, pb};

impl From<model::LinkKind> for pb::LinkKind {
    fn from(k: model::LinkKind) -> Self {
        use model::LinkKind as M;
        match k {
            M::Device => Self::Device,
            M::Loopback => Self::Loopback,
            M::Veth => Self::Veth,
            M::Bridge => Self::Bridge,
            M::Macvlan => Self::Macvlan,
            M::Macvtap => Self::Macvtap,
            M::Vlan => Self::Vlan,
            M::Vxlan => Self::Vxlan,
            M::Bond => Self::Bond,
            M::Tun => Self::Tun,
            M::Ipvlan => Self::Ipvlan,
            M::Dummy => Self::Dummy,
            M::Other => Self::Other,
        }
    }
}

impl From<pb::LinkKind> for model::LinkKind {
    fn from(k: pb::LinkKind) -> Self {
        use pb::LinkKind as P;
        match k {
            P::Device => Self::Device,
            P::Loopback => Self::Loopback,
            P::Veth => Self::Veth,
            P::Bridge => Self::Bridge,
            P::Macvlan => Self::Macvlan,
            P::Macvtap => Self::Macvtap,
            P::Vlan => Self::Vlan,
            P::Vxlan => Self::Vxlan,
            P::Bond => Self::Bond,
            P::Tun => Self::Tun,
            P::Ipvlan => Self::Ipvlan,
            P::Dummy => Self::Dummy,
            P::Other | P::Unspecified => Self::Other,
        }
    }
}

impl From<model::OperState> for pb::OperState {
    fn from(s: model::OperState) -> Self {
        use model::OperState as M;
        match s {
            M::Unknown => Self::Unknown,
            M::NotPresent => Self::NotPresent,
            M::Down => Self::Down,
            M::LowerLayerDown => Self::LowerLayerDown,
            M::Testing => Self::Testing,
            M::Dormant => Self::Dormant,
            M::Up => Self::Up,
        }
    }
}

impl From<pb::OperState> for model::OperState {
    fn from(s: pb::OperState) -> Self {
        use pb::OperState as P;
        match s {
            P::Unknown | P::Unspecified => Self::Unknown,
            P::NotPresent => Self::NotPresent,
            P::Down => Self::Down,
            P::LowerLayerDown => Self::LowerLayerDown,
            P::Testing => Self::Testing,
            P::Dormant => Self::Dormant,
            P::Up => Self::Up,
        }
    }
}

impl From<model::MacvlanMode> for pb::MacvlanMode {
    fn from(m: model::MacvlanMode) -> Self {
        use model::MacvlanMode as M;
        match m {
            M::Private => Self::Private,
            M::Vepa => Self::Vepa,
            M::Bridge => Self::Bridge,
            M::Passthru => Self::Passthru,
            M::Source => Self::Source,
        }
    }
}

impl TryFrom<pb::MacvlanMode> for model::MacvlanMode {
    type Error = model::ValidationError;
    fn try_from(m: pb::MacvlanMode) -> Result<Self, Self::Error> {
        use pb::MacvlanMode as P;
        Ok(match m {
            P::Private => Self::Private,
            P::Vepa => Self::Vepa,
            P::Bridge => Self::Bridge,
            P::Passthru => Self::Passthru,
            P::Source => Self::Source,
            P::Unspecified => {
                return Err(model::ValidationError::new(
                    "mode",
                    "unspecified",
                    "a macvlan mode is required (the kernel would silently pick vepa)",
                    "choose bridge, vepa, private, passthru or source",
                ));
            }
        })
    }
}

impl From<model::VlanProtocol> for pb::VlanProtocol {
    fn from(p: model::VlanProtocol) -> Self {
        match p {
            model::VlanProtocol::Ieee8021Q => Self::VlanProtocol8021q,
            model::VlanProtocol::Ieee8021Ad => Self::VlanProtocol8021ad,
        }
    }
}

impl From<pb::VlanProtocol> for model::VlanProtocol {
    /// Unspecified means the default, 802.1Q.
    fn from(p: pb::VlanProtocol) -> Self {
        match p {
            pb::VlanProtocol::VlanProtocol8021ad => Self::Ieee8021Ad,
            pb::VlanProtocol::VlanProtocol8021q | pb::VlanProtocol::Unspecified => Self::Ieee8021Q,
        }
    }
}

impl From<model::Role> for pb::Role {
    fn from(r: model::Role) -> Self {
        match r {
            model::Role::Viewer => Self::Viewer,
            model::Role::Operator => Self::Operator,
            model::Role::Admin => Self::Admin,
        }
    }
}

impl From<pb::Role> for Option<model::Role> {
    fn from(r: pb::Role) -> Self {
        match r {
            pb::Role::Viewer => Some(model::Role::Viewer),
            pb::Role::Operator => Some(model::Role::Operator),
            pb::Role::Admin => Some(model::Role::Admin),
            pb::Role::Unspecified => None,
        }
    }
}
