"""Models and runtimes: the .keras archive and its settings, the bundled models, the FlexUNet, batch
predictors, ONNX Runtime/OpenVINO/LiteRT conversions, int8 quantisation and export."""
