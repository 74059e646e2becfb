"""What a case may hold: its keys, the patterns of names and ids, and the fields refused because they
would make peft or transformers import, run or read something the case names."""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
FIELD_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,79}$")
CASE_KEYS = {"id", "title", "description", "upstream", "tags", "requires", "set_order", "model", "steps", "expect",
             "known_bugs"}
MODEL_KEYS = {"architecture", "head", "seed", "config", "dtype"}
STEP_META = {"op", "id", "when", "raises"}
CHECK_META = {"check", "id", "when"}
BUG_KEYS = {"id", "summary", "upstream", "affected", "fails"}
FAIL_KEYS = {"step", "check", "raises", "match"}
UPSTREAM_KEYS = {"issues", "prs"}
MAX_SEED = 2**32 - 1
MAX_INT = 10**6  # every integer field of a tiny-model case is far below this

#: Fields whose value names an adapter: peft joins adapter names into paths on save, so each is a plain name.
ADAPTER_FIELDS = {"adapter_name", "adapters", "selected_adapters", "adapter", "present", "absent", "active"}
#: Step and check fields holding a regular expression (``rename``/``key_mapping``: their keys).
REGEX_FIELDS = {"pattern", "match"}
REGEX_KEY_FIELDS = {"rename", "key_mapping"}
#: peft config fields holding regular expressions when they are strings (``*_pattern`` mappings: their keys).
CONFIG_REGEX_FIELDS = {"target_modules", "exclude_modules", "layers_pattern"}
CONFIG_REGEX_KEY_FIELDS = {"rank_pattern", "alpha_pattern"}
#: Config fields that make peft or transformers import, call or read something named by the case.
CODE_FIELDS = {
    "megatron_core": "peft imports the module it names (LoRA tensor parallelism)",
    "megatron_config": "it goes with megatron_core, a module peft imports",
    "trust_remote_code": "transformers would run code from a model repository",
    "auto_map": "it names classes transformers imports from a model repository",
    "auto_mapping": "AutoPeftModel imports the library and class it names",
    "base_model_name_or_path": "peft loads the base model from the path or Hub id it names",
    "name_or_path": "it names a path or Hub id a model is loaded from",
    "revision": "it names the Hub revision (or path) the base model is loaded from",
    "tokenizer_name_or_path": "prompt tuning loads a tokenizer from the path or Hub id it names",
    "tokenizer_kwargs": "they are passed to a tokenizer loaded from a path or the Hub",
    "prompt_tuning_init_state_dict_path": "peft reads the file it names",
    "corda_config": "it names cache and covariance files peft reads and writes",
    "lora_ga_config": "it names a cache file peft reads with torch.load",
    "cache_file": "peft reads (torch.load) or writes the file it names",
    "covariance_file": "peft reads or writes the file it names",
    "shadow_model": "peft loads a model from the path or Hub id it names",
    "quantization_config": "transformers imports the quantization backend it names",
    "use_kernels": "transformers loads kernels from the Hub",
    "kernel_config": "transformers loads kernels from the Hub",
}
#: Values of ``attn_implementation`` that load nothing (others name Hub kernels or optional packages).
ATTENTION = {"eager", "sdpa"}
#: peft config types a case may not name (they load adapters or models from paths).
REFUSED_CONFIG_TYPES = {"XLoraConfig": "it loads the adapters it names from paths",
                        "ShadowConfig": "it loads the model it names from a path or the Hub"}
PLAIN_NAME = re.compile(r"^\w[\w-]{0,63}$")  # letters (any script), digits, "_", "-": a safe path component


#: C0/C1 control characters and DEL, except the whitespace ones (tab, newline, carriage return, VT, FF).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


#: Fields of free text or regular expressions: an unquoted `` #`` inside them is refused (a YAML comment).
TEXT_FIELDS = {"title", "description", "summary", "match", "pattern", "type", "equals"}

