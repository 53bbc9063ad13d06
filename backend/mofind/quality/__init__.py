"""Match quality: calibrated confidence per result and the "no good match in this library" flag.

`null` (unrelated texts scored against the library), `calibration` (the fitted logistic model in the model
folder), `assess` (what a search reply says), `fit` (`mofind model calibrate`: fitting and the flag's report).
"""
