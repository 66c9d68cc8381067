"""Sharded contrastive training: mesh, sharding rules, loss over the global batch, step, GradCache accumulation,
orbax checkpointing with exact resume, metrics, held-out evaluation and the trainer loop (`trainer.train`)."""
