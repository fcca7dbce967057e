"""Folder ``converters/``, imported as ``slmkit.converters``: writers, quantizers and checks that turn a
Hugging Face GPT-2 folder into GGUF and ONNX artifacts with a manifest."""
