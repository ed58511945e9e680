"""How far a search can be trusted: architectures trained stand-alone with one recipe (`hwnas.judge.standalone`),
how well a supernet or a predictor ranks them (`hwnas.judge.rank`, ``hwnas rank``), the found architectures
beside random ones and the references at equal latency (`hwnas.judge.report`, ``hwnas report``), the fitting
of an accuracy predictor on supernet-scored and stand-alone architectures (`hwnas.judge.fit`,
``hwnas predictor fit``), and their charts.

This package sits above `hwnas.search`: it reads search directories and the estimators searches use; nothing
in `hwnas.search` imports it.
"""
