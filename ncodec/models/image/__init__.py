"""Learned image compression networks: the hyperprior family (`hyperprior`) and its layers (`layers`)."""
