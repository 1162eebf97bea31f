"""What a run reads: corpora from their sources (source, sources, text_source, hub_source,
hub, embedded/), the tokenizer, the token cache (cache, token_stream, tokenize_corpus), packed
rows and the pretraining DataModule (sequences, datamodule, corpus), what a masking strategy
reads from the corpus (statistics, pmi, corpus_weights, informask), and labelled tasks for
downstream (tasks, task_readers, glue, labelled).

Layer 6 of 9: may import dmx.masking (the DataModule masks batches), dmx.config and
dmx.common; never the model, training, or anything above. A new corpus format or a new
downstream task's reader goes here.
"""
