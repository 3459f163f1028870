"""The records: pydantic models that mirror the Avro contract, the codec, the secret box.

``models`` (the contract mirror), ``checks`` (the field rules the models apply), ``ids``
(delivery ids, signing secrets), ``codec`` (Avro single-object encoding; reads ``schemas/``),
``jobcodec`` (delivery jobs encoded fast), ``secretbox`` (encrypts webhook secrets at rest),
``schemastore`` (writer schemas by fingerprint), ``intake`` (domain events in every input format).
"""
