"""The knowledge base's text engine: sniffing, extraction, chunking and local embeddings.

Library code without models or I/O of its own (the PDF reader runs in a child
process of its own, with a time limit). Each module can be used on its own:

- ``sniffing``: what an uploaded file is, by its bytes (PDF, UTF-8 text, or refused).
- ``extraction``: a document's text page by page; every failure is an ``ExtractionError`` with a code.
- ``chunking``: pages into overlapping chunks of about 150-170 words that keep their page numbers.
- ``embeddings``: all-MiniLM-L6-v2 (384 dimensions) on onnxruntime, loaded once per process.
"""
