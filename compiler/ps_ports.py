"""The PS's PL-facing AXI interfaces per PS family, as data for compiler/vivado_tcl.py.

Every master and slave interface a board preset could enable is listed with its enable property and
its clock pin, so build.tcl can switch each one explicitly on (and clock it) or off. Sources:

- zynq_ultra_ps_e (PG201): AMD's own Kria starter-kit block design (Xilinx/kria-base-hardware,
  k26_starter_kits/kv260/scripts/config_bd.tcl) sets exactly these 13 enables to 0 after
  apply_board_preset: PSU__USE__M_AXI_GP0..2, PSU__USE__S_AXI_GP0..6, PSU__USE__S_AXI_ACP,
  PSU__USE__S_AXI_ACE. GP0/GP1/GP2 masters are M_AXI_HPM0_FPD/HPM1_FPD/HPM0_LPD; slaves GP0/GP1 are
  S_AXI_HPC0/1_FPD, GP2..5 S_AXI_HP0..3_FPD, GP6 S_AXI_LPD. The clock pins are the IP's port names
  (maxihpm0_fpd_aclk, maxihpm1_fpd_aclk, maxihpm0_lpd_aclk, saxihpc{i}_fpd_aclk, saxihp{i}_fpd_aclk,
  saxi_lpd_aclk, saxiacp_fpd_aclk, sacefpd_aclk), as in the IP's generated stub.
- processing_system7 (PG082): PCW_USE_M_AXI_GP0/1, PCW_USE_S_AXI_GP0/1, PCW_USE_S_AXI_HP0..3,
  PCW_USE_S_AXI_ACP with clock pins M_AXI_GP{i}_ACLK, S_AXI_GP{i}_ACLK, S_AXI_HP{i}_ACLK, S_AXI_ACP_ACLK.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PsPort:
    """One PS AXI interface: enable property, clock pin; for PL->DDR slaves also width and segment."""

    enable: str
    clock: str
    width: str = ""  # data-width property (slave ports the accelerator may use)
    segment: str = ""  # DDR address segment seen through this port ("" = not a PL->DDR port of ours)


@dataclass(frozen=True)
class PsFamily:
    """Vivado names for one PS family."""

    vlnv: str
    cell: str
    rule: str  # apply_bd_automation rule applying the board preset
    rule_config: str  # with board files installed
    rule_config_bare: str  # without board files ("" = run no automation)
    clock_pin: str
    resetn_pin: str
    clock_props: tuple[str, ...]  # properties set to the PL clock (MHz)
    pl_enable: tuple[str, ...]  # properties set to 1: the PL clock 0 and its reset exist
    masters: dict[str, PsPort]  # every PS->PL master interface
    slaves: dict[str, PsPort]  # every PL->PS slave interface
    control_base: int

    def ddr_slaves(self) -> list[str]:
        """Slave ports through which the accelerator's m_axi bundles may reach DDR."""
        return [n for n, p in self.slaves.items() if p.segment]


def _zus_slaves() -> dict[str, PsPort]:
    s = {f"S_AXI_HP{i}_FPD": PsPort(f"CONFIG.PSU__USE__S_AXI_GP{i + 2}", f"saxihp{i}_fpd_aclk",
                                    f"CONFIG.PSU__SAXIGP{i + 2}__DATA_WIDTH", f"SAXIGP{i + 2}/HP{i}_DDR_LOW")
         for i in range(4)}
    s.update({f"S_AXI_HPC{i}_FPD": PsPort(f"CONFIG.PSU__USE__S_AXI_GP{i}", f"saxihpc{i}_fpd_aclk",
                                          f"CONFIG.PSU__SAXIGP{i}__DATA_WIDTH", f"SAXIGP{i}/HPC{i}_DDR_LOW")
              for i in range(2)})
    s["S_AXI_LPD"] = PsPort("CONFIG.PSU__USE__S_AXI_GP6", "saxi_lpd_aclk")
    s["S_AXI_ACP_FPD"] = PsPort("CONFIG.PSU__USE__S_AXI_ACP", "saxiacp_fpd_aclk")
    s["S_AXI_ACE_FPD"] = PsPort("CONFIG.PSU__USE__S_AXI_ACE", "sacefpd_aclk")
    return s


def _z7_slaves() -> dict[str, PsPort]:
    s = {f"S_AXI_HP{i}": PsPort(f"CONFIG.PCW_USE_S_AXI_HP{i}", f"S_AXI_HP{i}_ACLK",
                                f"CONFIG.PCW_S_AXI_HP{i}_DATA_WIDTH", f"S_AXI_HP{i}/HP{i}_DDR_LOWOCM")
         for i in range(4)}
    s.update({f"S_AXI_GP{i}": PsPort(f"CONFIG.PCW_USE_S_AXI_GP{i}", f"S_AXI_GP{i}_ACLK") for i in range(2)})
    s["S_AXI_ACP"] = PsPort("CONFIG.PCW_USE_S_AXI_ACP", "S_AXI_ACP_ACLK")
    return s


_Z7_NO_AUTO = 'Master "Disable" Slave "Disable"'  # the automation connects no AXI port

PS_FAMILIES = {
    "zynqmp": PsFamily(
        vlnv="xilinx.com:ip:zynq_ultra_ps_e", cell="zynq_ultra_ps_e_0",
        rule="xilinx.com:bd_rule:zynq_ultra_ps_e",
        rule_config='apply_board_preset "1"', rule_config_bare="",
        clock_pin="pl_clk0", resetn_pin="pl_resetn0",
        clock_props=("CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ",),
        pl_enable=("CONFIG.PSU__FPGA_PL0_ENABLE",),
        masters={"M_AXI_HPM0_FPD": PsPort("CONFIG.PSU__USE__M_AXI_GP0", "maxihpm0_fpd_aclk"),
                 "M_AXI_HPM1_FPD": PsPort("CONFIG.PSU__USE__M_AXI_GP1", "maxihpm1_fpd_aclk"),
                 "M_AXI_HPM0_LPD": PsPort("CONFIG.PSU__USE__M_AXI_GP2", "maxihpm0_lpd_aclk")},
        slaves=_zus_slaves(), control_base=0xA000_0000),
    "zynq7": PsFamily(
        vlnv="xilinx.com:ip:processing_system7", cell="processing_system7_0",
        rule="xilinx.com:bd_rule:processing_system7",
        rule_config=f'make_external "FIXED_IO, DDR" apply_board_preset "1" {_Z7_NO_AUTO}',
        rule_config_bare=f'make_external "FIXED_IO, DDR" apply_board_preset "0" {_Z7_NO_AUTO}',
        clock_pin="FCLK_CLK0", resetn_pin="FCLK_RESET0_N",
        clock_props=("CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ",),
        pl_enable=("CONFIG.PCW_EN_CLK0_PORT", "CONFIG.PCW_EN_RST0_PORT"),
        masters={f"M_AXI_GP{i}": PsPort(f"CONFIG.PCW_USE_M_AXI_GP{i}", f"M_AXI_GP{i}_ACLK")
                 for i in range(2)},
        slaves=_z7_slaves(), control_base=0x4000_0000),
}

# SOM board -> carrier connection (AMD's Kria flow: Xilinx/kria-base-hardware k26_starter_kits/kv260/
# scripts/main.tcl sets this after the kv260_som board part). Keyed by vendor:board:part0.
CARRIER_CONNECTIONS = {
    "xilinx.com:kv260_som:part0": "som240_1_connector xilinx.com:kv260_carrier:som240_1_connector:1.3",
}
