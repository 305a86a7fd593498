# Names vulture (`vulture rnnexp hydra_plugins tests .ci/vulture_whitelist.py`, in .ci/run) reports as unused
# that are used where it cannot see: each says by whom. A new entry needs a reason; dead code is deleted instead.
# ruff: noqa: B018
from vulture.whitelist_utils import Whitelist

_ = Whitelist()

# Hydra instantiates the plugins by their _target_ (conf/hydra/...) and calls their hooks (the launcher and
# sweeper classes are also named in tests, so vulture sees them used).
_.TrackingCallback  # hydra_plugins/rnnexp_launcher/tracking.py: hydra.callbacks (conf/tracking/)
_.on_run_start  # Callback hooks, called by Hydra (TrackingCallback; tests/test_slurm.py's stand-in)
_.on_multirun_start
_.on_job_start
_.on_job_end
_.on_multirun_end
_.hydra_cfg  # launcher.py clears JobReturn.hydra_cfg, which Hydra set, so a sweep does not keep every config

# Config dataclass fields and enum members read by name: from YAML, the command line, or asdict/JSON.
_.signal_delay_s  # RnnexpSlurmConf: a submitit SLURM option (conf/hydra/launcher/slurm.yaml)
_.xavier_uniform  # config.Init: init=xavier_uniform
_.mlflow  # config tracking backend: tracking=mlflow
_.rnnexp_version  # manifest.Manifest and sweep_record fields, written to manifest.json / the history store
_.started_utc  # sweep_record.SweepRecord: columns of the history store (dataclasses.asdict)
_.git_commit
_.git_dirty
_.torch_version
_.numpy_version
_.env_json
_.added_utc
_.record_lost  # manifest.record_lost: the SLURM launcher's lost_recorder, named as a string in its config
_.TerminalFilter  # rnnexp.logs: named in conf/hydra/job_logging/rnnexp.yaml
_.EXIT_SIGTERM  # rnnexp.cli: the documented exit code of a SIGTERM'd run (README), unpacked with the others

# Attributes a library reads after rnnexp sets them.
_.ir_version  # onnx ModelProto (backends/onnxrt.py)
_.inter_op_num_threads  # onnxruntime SessionOptions (backends/onnxrt.py)
_.execution_mode
_.graph_optimization_level
_.log_severity_level
_.writeable  # numpy ndarray.flags.writeable = False (refcache.py: a cached reference is read-only)
_.binary_location  # selenium ChromeOptions (tests/test_browser.py)
_.working_dir  # hydra JobReturn fields, set as run_job sets them (hydra_plugins/rnnexp_launcher/_run.py)
_.task_name

# Tests: what pytest and the standard library call or read.
_.pytestmark  # pytest reads a module's marks
_.handle_starttag  # html.parser.HTMLParser callbacks (tests/test_html.py)
_.handle_endtag
_.handle_data
_.duration  # a keyword parameter the callee passes (jax.monitoring listener, tests/test_engines.py)
_.missing_ok  # Path.unlink's keyword, kept in a monkeypatched stand-in's signature (tests/test_values.py)
