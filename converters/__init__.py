"""Writers and quantizers that turn a Hugging Face GPT-2 folder into GGUF and ONNX artifacts."""
