"""Pass infrastructure: Pass, PassContext, PassManager, registry, textual pipelines, instruments."""
