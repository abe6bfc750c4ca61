"""The optimizer: :class:`RMSprop`, Keras 3's RMSprop over arrays updated in place.

:mod:`.rmsprop` declares the class (its hyperparameters, the plan of each
call, ``apply``); its methods by concern are mixed in from :mod:`.slots`
(building on variables, the EMA), :mod:`.checkpoints` (``state_dict``,
pickling) and :mod:`.flavors` (``like_torch``, ``like_optax``,
``like_tf1``); :mod:`.learning_rate` holds the learning rate's checks.
"""

from .checkpoints import STATE_KINDS
from .rmsprop import RMSprop

__all__ = ["RMSprop", "STATE_KINDS"]
