"""The host's VPC and vSwitch (Alibaba) or subnet (Tencent): adopted by id, or created."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_alicloud as alicloud
from tencentcloud_iac_pulumi import subnet as tc_subnet
from tencentcloud_iac_pulumi import vpc as tc_vpc

from plan import Cloud, CreatedHost
from plan import Host as PlannedHost
from plan import Network as PlannedNetwork
from policies.facts import NETWORK


@dataclass(frozen=True)
class NetworkArgs:
    cloud: Cloud
    network: PlannedNetwork
    host: PlannedHost
    """A created host's zone is the subnet's."""


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    """The VPC the security group and the instance live in."""
    subnet_id: pulumi.Output[str]
    """The vSwitch (Alibaba) or subnet (Tencent) of the instance."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        network = args.network
        super().__init__(NETWORK, name, {"vpcCidr": network.vpc_cidr}, opts)
        if network.vpc_id is not None and network.subnet_id is not None:
            self.vpc_id = pulumi.Output.from_input(network.vpc_id)
            self.subnet_id = pulumi.Output.from_input(network.subnet_id)
        elif args.cloud == Cloud.ALIBABA:
            self._create_alibaba(name, network, _zone(args.host))
        else:
            self._create_tencent(name, network, _zone(args.host))
        self.register_outputs({"vpc_id": self.vpc_id, "subnet_id": self.subnet_id})

    def _create_alibaba(self, name: str, network: PlannedNetwork, zone: str) -> None:
        child = pulumi.ResourceOptions(parent=self)
        vpc = alicloud.vpc.Network(f"{name}-vpc", vpc_name=name, cidr_block=network.vpc_cidr, opts=child)
        switch = alicloud.vpc.Switch(
            f"{name}-vswitch",
            vswitch_name=name,
            vpc_id=vpc.id,
            cidr_block=network.subnet_cidr,
            zone_id=zone,
            opts=child,
        )
        self.vpc_id, self.subnet_id = vpc.id, switch.id

    def _create_tencent(self, name: str, network: PlannedNetwork, zone: str) -> None:
        child = pulumi.ResourceOptions(parent=self)
        vpc = tc_vpc.Instance(f"{name}-vpc", name=name, cidr_block=network.vpc_cidr, opts=child)
        subnet = tc_subnet.Instance(
            f"{name}-subnet",
            name=name,
            vpc_id=vpc.id,
            cidr_block=network.subnet_cidr,
            availability_zone=zone,
            opts=child,
        )
        self.vpc_id, self.subnet_id = vpc.id, subnet.id


def _zone(host: PlannedHost) -> str:
    if not isinstance(host, CreatedHost):
        raise pulumi.RunError("platform:network: give vpcId and subnetId of the adopted host's network")
    return host.zone
