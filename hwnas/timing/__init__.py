"""The torch-free bottom of the measuring layer: the timing protocol (`hwnas.timing.protocol`), the runtime
runners that time one prepared model (`runners`, `ort` for ONNX Runtime, `litert` for LiteRT) and the measuring
process that ships to a target device (`target_main`). Nothing here imports torch or anything of hwnas but
`hwnas.errors`, so the whole package runs on a board with only numpy and the runtime."""
