"""The YAML case format: parsing, validation with file:line:field errors, and the case objects.

Importing it is cheap (no torch): it is used at collection time.

- ``rules``: what a case may hold (its keys, name patterns, the fields and config types refused);
- ``cases``: the case objects (:class:`Case`, :class:`KnownBug`...) and :class:`CaseFormatError`;
- ``reader``: one YAML document validated into a :class:`Case`, or the first problem;
- ``files``: case files and directories read (bounded, never raising), ids made unique.
"""

from .cases import (Case, CaseFormatError, CheckSpec, ExpectedRaise, FailureSpec, KnownBug, MalformedCase,
                    ModelSpec, StepSpec, Upstream)
from .files import case_files, load_cases, read_case_file, remember_reads
from .rules import CODE_FIELDS, ID_PATTERN, REFUSED_CONFIG_TYPES

__all__ = ["CODE_FIELDS", "Case", "CaseFormatError", "CheckSpec", "ExpectedRaise", "FailureSpec", "ID_PATTERN",
           "KnownBug", "MalformedCase", "ModelSpec", "REFUSED_CONFIG_TYPES", "StepSpec", "Upstream", "case_files",
           "load_cases", "read_case_file", "remember_reads"]
