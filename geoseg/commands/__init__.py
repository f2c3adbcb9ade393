"""Click commands of the ``geoseg`` CLI, one module per command.

Modules here parse options, call the library and report; they import TensorFlow only inside
the command functions that need it, so ``geoseg --help`` stays fast.
"""
