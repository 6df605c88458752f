# genomamba pipeline: fetch -> validate -> tokenize -> pretrain -> finetune -> embed, predict, variants,
# benchmark; one pipelines/<stage>.smk per stage (embed and predict share pipelines/apply.smk).
#
#   snakemake --cores 2 --configfile config/demo.yaml        (what `make demo` runs)
#
# Every rule calls the genomamba CLI through shell: (one code path for laptop and pipeline),
# writes a log under results/<run>/logs/, and its outputs under results/<run>/.
# Adding a stage (pretrain, finetune, embed, ...):
#   1. pipelines/<stage>.smk with its rules and a line STAGE_TARGETS["<stage>"] = <function returning its final files>
#   2. its name in the `stages` enum of pipelines/schema/config.schema.yaml, plus an object for its options
#   3. an `include:` line below.
from snakemake.utils import min_version, validate

min_version("8.0")


# The default config applies only when no --configfile is given: loading it as well would silently
# fill keys a user's config leaves out with demo values instead of the schema's defaults.
if not workflow.overwrite_configfiles:

    configfile: "config/demo.yaml"


validate(config, "pipelines/schema/config.schema.yaml")


report: "pipelines/report/workflow.rst"


RESULTS = f"{config['results_dir']}/{config['run']}"
# stage name -> function() returning the files that stage finally produces; filled by each .smk.
STAGE_TARGETS = {}


wildcard_constraints:
    genome=r"[A-Za-z0-9_][A-Za-z0-9_.-]*",
    file=r"[^/]+",


include: "pipelines/common.smk"
include: "pipelines/fetch.smk"
include: "pipelines/validate.smk"
include: "pipelines/tokenize.smk"
include: "pipelines/pretrain.smk"
include: "pipelines/finetune.smk"
include: "pipelines/apply.smk"
include: "pipelines/variants.smk"
include: "pipelines/benchmark.smk"


rule all:
    default_target: True
    input:
        [path for stage in config["stages"] for path in STAGE_TARGETS[stage]()],
