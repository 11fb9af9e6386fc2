"""mRECIST for hepatocellular carcinoma: the viable-tumour rules on the RECIST 1.1 engine.

Source: Lencioni R, Llovet JM, "Modified RECIST (mRECIST) assessment for hepatocellular
carcinoma", Semin Liver Dis 2010;30:52–60; DOMAIN.md "mRECIST (HCC)".

Choices the schema forces, stated once:
- Intrahepatic targets are measured by `viable_diameter_mm`; one without it is not assessed
  (a fully necrotic target is read as 0.0, not left empty). Extrahepatic targets keep their
  RECIST measurement unless the reader gave a viable diameter; nodes use the short axis.
- Non-target "IR/SD" is reported with the one spelling used across criteria, NON-CR/NON-PD.
- Ascites has no lesion in the schema: new or increasing ascites is never PD by itself; only
  `new_ascites_cytology_proven` counts (as a malignant effusion, in the shared engine).
- A baseline portal vein tumour thrombus is a non-measurable non-target: persisting
  enhancement keeps a CR from being declared, a scan without its read makes the non-target
  response NE. Its progression is judged by the PVTT criterion (pvtt.py): the schema carries
  no unequivocal-progression call for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from events import Lesion, ProtocolParameters, PvttAssessment, ScanReadData
from projections.criteria.recist import NonTargetState, Recist, tenths

PORTA_HEPATIS = "porta_hepatis"
PORTA_HEPATIS_MALIGNANT = 200  # tenths of a mm: short axis ≥ 20 mm (Lencioni & Llovet 2010)
NEW_LESION_MIN = 100  # tenths: a new intrahepatic lesion counts from 10 mm


def _porta_hepatis_node(lesion: Lesion) -> bool:
    return lesion.is_lymph_node and lesion.organ == PORTA_HEPATIS


@dataclass(frozen=True, slots=True)
class MRecist(Recist):
    """mRECIST: viable diameters, HCC-pattern new lesions, porta hepatis nodes ≥ 20 mm."""

    name: str = "mRECIST"
    pd_min_abs: int = 0

    @classmethod
    def from_parameters(cls, params: ProtocolParameters) -> MRecist:
        return cls(pd_min_abs=tenths(params.mrecist_pd_min_abs_mm))

    def eligible(self, lesion: Lesion) -> bool:
        """A porta hepatis node is malignant only with a short axis ≥ 20 mm."""
        short = lesion.short_axis_mm
        return not (
            _porta_hepatis_node(lesion)
            and short is not None
            and tenths(short) < PORTA_HEPATIS_MALIGNANT
        )

    def size(self, lesion: Lesion, node: bool) -> int | None:
        """The viable (arterially enhancing) diameter; nodes by short axis."""
        if lesion.not_assessed or node:
            return Recist.size(self, lesion, node)
        if lesion.viable_diameter_mm is not None:
            return tenths(lesion.viable_diameter_mm)
        if lesion.location == "intrahepatic":
            return None
        return Recist.size(self, lesion, node)

    def measurable(self, lesion: Lesion) -> bool:
        """≥ 10 mm viable tumour; nodes ≥ 15 mm short axis, porta hepatis ≥ 20 mm."""
        size = self.size(lesion, lesion.is_lymph_node)
        if size is None:
            return False
        if lesion.is_lymph_node:
            return size >= self.node_normal(lesion) if _porta_hepatis_node(lesion) else size >= 150
        return size >= 100

    def node_normal(self, lesion: Lesion) -> int:
        return PORTA_HEPATIS_MALIGNANT if _porta_hepatis_node(lesion) else 100

    def non_target_state(self, lesion: Lesion | None, baseline: Lesion) -> NonTargetState:
        """CR needs no intratumoral arterial enhancement in any non-target."""
        state = Recist.non_target_state(self, lesion, baseline)
        if state == "present" and lesion is not None and lesion.enhancing is False:
            return "gone"
        return state

    def new_counts(self, lesion: Lesion, first: Lesion) -> bool:
        """A new intrahepatic lesion counts at ≥ 10 mm with the typical HCC pattern (arterial
        enhancement + washout); an atypical one only once it has grown ≥ 10 mm since it was
        first seen. Extrahepatic new lesions count as under RECIST 1.1; a new porta hepatis
        node only at ≥ 20 mm short axis."""
        if _porta_hepatis_node(lesion):
            short = lesion.short_axis_mm
            return short is not None and tenths(short) >= PORTA_HEPATIS_MALIGNANT
        if lesion.location != "intrahepatic":
            return True
        if lesion.longest_diameter_mm is None:
            return False
        size = tenths(lesion.longest_diameter_mm)
        if lesion.typical_hcc_pattern:
            return size >= NEW_LESION_MIN
        if first.longest_diameter_mm is None:
            return False
        return size - tenths(first.longest_diameter_mm) >= NEW_LESION_MIN

    def pvtt_is_non_target(self, baseline: ScanReadData) -> bool:
        return baseline.pvtt is not None and baseline.pvtt.present

    def pvtt_state(self, pvtt: PvttAssessment | None) -> NonTargetState:
        """A thrombus without enhancement (or gone) no longer counts as viable tumour."""
        if pvtt is None:
            return "missing"
        if not pvtt.present or pvtt.enhancing is False:
            return "gone"
        return "present"
