"""The SuperNet (every candidate op of every layer in one module) and the evaluation of the architectures
that inherit its weights: BN recalibration, accuracy, and the cached `SupernetEvaluator`."""

from hwnas.supernet.evaluate import accuracy, calibration_batches, recalibrate_bn, subnet_accuracy
from hwnas.supernet.evaluator import Evaluator, SupernetEvaluator
from hwnas.supernet.supernet import WEIGHT_SHARING, LayerChoice, SuperNet

__all__ = ["WEIGHT_SHARING", "Evaluator", "LayerChoice", "SuperNet", "SupernetEvaluator", "accuracy",
           "calibration_batches", "recalibrate_bn", "subnet_accuracy"]
